"""The layout space: components, their variants, forbidden combinations, mixed-radix indexing.

A layout is a tuple of variant codes ``x = (x_1, ..., x_K)`` with ``0 <= x_k < n_k``. Layouts
are addressed by a mixed-radix integer whose *last* component varies fastest::

    index(x) = ((x_1 * n_2 + x_2) * n_3 + x_3) ... * n_K + x_K

so a space of any size (10^12 layouts and far beyond) is enumerated in chunks of contiguous
indices without ever being materialised. Python integers are used at the API boundary, so
indices are exact for any size; vectorised helpers use int64 and are limited to spaces below
2^63 layouts.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["LayoutSpace", "RESERVED_NAMES"]

_INT64_LIMIT = 2**63 - 1

#: Names a component may not take: data columns (observations, events, segments), output
#: columns (scores, proposals, designs) and posterior variables. A component with one of
#: these names would overwrite, or be overwritten by, that column or variable. (Posterior
#: dimension names such as ``chain`` or ``draw`` are fine: the file renames those dims.)
RESERVED_NAMES = (
    "index",
    "impressions",
    "clicks",
    "weight",
    "segment",
    "age",
    "round",
    "served_at",
    "clicked_at",
    "mean",
    "lower",
    "upper",
    "p_best",
    "true_ctr",
    "intercept",
    "sigma_main",
    "tau_pair",
)


@dataclass(frozen=True, eq=False)
class LayoutSpace:
    """A combinatorial space of callout layouts.

    The space is immutable and hashable (by value), so it can be passed as static
    configuration to jitted code.

    Args:
        components: ordered mapping ``{component name: [variant labels]}``. Component order
            fixes the column order of layout code arrays and the mixed-radix index.
        forbidden: optional list of partial layouts ``{component: variant label}``; every
            layout that matches all entries of one rule is not allowed (e.g.
            ``{"headline": "h2", "image": "img3"}`` forbids every layout pairing them).
        segments: optional ordered mapping ``{context variable: [values]}`` (e.g.
            ``{"member": ["prime", "non_prime"]}``). A *segment* is one combination of
            values, addressed by a mixed-radix segment code (last variable fastest). Data
            then carry one column per context variable, and the model gains segment terms.
        attributes: optional variant attributes ``{component: {label: {name: value}}}``;
            values are booleans, strings (categories) or numbers. A component that has
            attributes needs a value of every attribute for every variant. They enter the
            model as ``m_k[v] = a_k(v) . beta_k + e_k[v]`` (see :meth:`attribute_matrix`).
        retired: optional ``{component: [labels]}`` of retired variants: they keep their
            codes, data containing them are still valid observations, but no layout holding
            one is allowed (proposed, picked or scored). See :meth:`without_variants`.

    Attributes:
        components: tuple of component names, in order.
        variants: tuple (one per component) of tuples of variant labels.
        cardinalities: number of variants per component, ``(n_1, ..., n_K)``.
        forbidden: the rules as tuples of ``(component index, variant code)`` pairs; a
            retired variant appears here as a one-entry rule, so everything that excludes
            forbidden layouts also excludes retired variants.
        retired: the retired variants as ``(component index, variant code)`` pairs.
        attributes: per component, a tuple of ``(attribute name, values per variant)``.
        segments: tuple of ``(context variable, (values...))`` pairs; empty without segments.

    Raises:
        ValueError: on an empty space or component, a duplicate component or variant label,
            a forbidden rule naming an unknown component or variant, an empty rule, or rules
            that together forbid every layout.

    Examples:
        >>> space = LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b", "c"]},
        ...                     forbidden=[{"headline": "h2", "image": "c"}])
        >>> space.size, space.num_allowed
        (6, 5)
        >>> space.index({"headline": "h2", "image": "a"})
        3
        >>> space.layout(3)
        {'headline': 'h2', 'image': 'a'}
    """

    components: tuple[str, ...]
    variants: tuple[tuple[str, ...], ...]
    forbidden: tuple[tuple[tuple[int, int], ...], ...] = ()
    segments: tuple[tuple[str, tuple[str, ...]], ...] = ()
    retired: tuple[tuple[int, int], ...] = ()
    attributes: tuple[tuple[tuple[str, tuple[Any, ...]], ...], ...] = ()
    _lookup: tuple[dict[str, int], ...] = field(default=(), repr=False, compare=False)
    _num_allowed: int = field(default=0, repr=False, compare=False)
    _cardinalities: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _strides: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __init__(
        self,
        components: Mapping[str, Sequence[str]],
        forbidden: Sequence[Mapping[str, str]] | None = None,
        segments: Mapping[str, Sequence[str]] | None = None,
        attributes: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        retired: Mapping[str, Sequence[str]] | None = None,
    ):
        if not isinstance(components, Mapping) or len(components) == 0:
            raise ValueError(
                "LayoutSpace needs at least one component: pass a mapping "
                "{component name: [variant labels, ...]}"
            )
        names: list[str] = []
        variants: list[tuple[str, ...]] = []
        for name, labels in components.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"component names must be non-empty strings, got {name!r}")
            if name.strip().lower() in RESERVED_NAMES:
                raise ValueError(
                    f"component name {name!r} is reserved (a data, output or posterior name); "
                    f"rename it; reserved (in any case): {', '.join(RESERVED_NAMES)}"
                )
            if isinstance(labels, str) or not isinstance(labels, Sequence):
                raise ValueError(
                    f"component {name!r}: variants must be a list of labels, got {labels!r}"
                )
            labels = tuple(str(v) for v in labels)
            if len(labels) == 0:
                raise ValueError(f"component {name!r} has no variants; give at least one label")
            seen: set[str] = set()
            for v in labels:
                if v in seen:
                    raise ValueError(
                        f"component {name!r} lists variant {v!r} twice; labels must be unique"
                    )
                seen.add(v)
            names.append(name)
            variants.append(labels)
        lookup = tuple({v: i for i, v in enumerate(vs)} for vs in variants)
        object.__setattr__(self, "components", tuple(names))
        object.__setattr__(self, "variants", tuple(variants))
        object.__setattr__(self, "_lookup", lookup)
        # derived fields, computed once (the space is immutable)
        card = tuple(len(v) for v in variants)
        strides = [math.prod(card[k + 1 :]) for k in range(len(card))]
        object.__setattr__(self, "_cardinalities", card)
        object.__setattr__(self, "_strides", tuple(strides))

        rules: list[tuple[tuple[int, int], ...]] = []
        for r, rule in enumerate(forbidden or ()):
            if not isinstance(rule, Mapping) or len(rule) == 0:
                raise ValueError(
                    f"forbidden rule #{r} must be a non-empty mapping "
                    f"{{component: variant}}, got {rule!r}"
                )
            entries = []
            for comp, label in rule.items():
                if comp not in self.components:
                    raise ValueError(
                        f"forbidden rule #{r} names unknown component {comp!r}; "
                        f"valid components: {list(self.components)}"
                    )
                k = self.components.index(comp)
                if str(label) not in lookup[k]:
                    raise ValueError(
                        f"forbidden rule #{r} names unknown variant {label!r} of component "
                        f"{comp!r}; valid variants: {list(self.variants[k])}"
                    )
                entries.append((k, lookup[k][str(label)]))
            rules.append(tuple(sorted(entries)))
        # Variant lifecycle and attributes (issue 10): retired variants become one-entry rules.
        retired_pairs = _parse_retired(self, retired)
        rules += [(kv,) for kv in retired_pairs]
        object.__setattr__(self, "retired", retired_pairs)
        object.__setattr__(self, "attributes", _parse_attributes(self, attributes))
        object.__setattr__(self, "forbidden", tuple(dict.fromkeys(rules)))
        # derived once: inclusion-exclusion is exponential in the number of rules
        object.__setattr__(self, "_num_allowed", self.size - self._count_union(0, {}, 0))
        if self.num_allowed == 0:
            raise ValueError("the forbidden rules forbid every layout in the space")
        object.__setattr__(self, "segments", _check_segments(segments, self.components))

    # ----------------------------------------------------------------------------- basics
    @property
    def num_components(self) -> int:
        """Number of components K."""
        return len(self.components)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Number of variants of each component, ``(n_1, ..., n_K)``."""
        return self._cardinalities

    @property
    def label_codes(self) -> tuple[Mapping[str, int], ...]:
        """Per component, the read-only mapping ``{variant label: code}``."""
        return tuple(MappingProxyType(m) for m in self._lookup)

    @property
    def size(self) -> int:
        """Number of layouts in the full product (the range of the index), forbidden included."""
        return math.prod(self.cardinalities)

    @property
    def num_allowed(self) -> int:
        """Exact number of allowed layouts (inclusion-exclusion over the forbidden rules)."""
        return self._num_allowed

    def _count_union(self, start: int, fixed: dict[int, int], depth: int) -> int:
        # Inclusion-exclusion over rule subsets, pruning inconsistent intersections early.
        total = 0
        card = self.cardinalities
        for r in range(start, len(self.forbidden)):
            merged = dict(fixed)
            ok = True
            for k, v in self.forbidden[r]:
                if merged.get(k, v) != v:
                    ok = False
                    break
                merged[k] = v
            if not ok:
                continue
            free = math.prod(n for k, n in enumerate(card) if k not in merged)
            total += free - self._count_union(r + 1, merged, depth + 1)
        return total

    @property
    def strides(self) -> tuple[int, ...]:
        """Mixed-radix place values: ``index = sum_k x_k * strides[k]`` (Python ints)."""
        return self._strides

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayoutSpace):
            return NotImplemented
        return self._key() == other._key()

    def _key(self) -> tuple:
        key = (self.components, self.variants, self.forbidden, self.retired, self.attributes)
        return key + (self.segments,)

    def __repr__(self) -> str:
        comps = ", ".join(
            f"{c}[{n}]" for c, n in zip(self.components, self.cardinalities, strict=True)
        )
        segs = f", segments={self.num_segments}" if self.segments else ""
        return (
            f"LayoutSpace({comps}; size={self.size}, forbidden rules={len(self.forbidden)}{segs})"
        )

    # ----------------------------------------------------------------------- segments
    @property
    def segment_names(self) -> tuple[str, ...]:
        """Names of the context variables (empty without segments)."""
        return tuple(name for name, _ in self.segments)

    @property
    def num_segments(self) -> int:
        """Number of segments (combinations of context values); 0 without segments."""
        return math.prod(len(v) for _, v in self.segments) if self.segments else 0

    def segment_code(self, segment: Mapping[str, str]) -> int:
        """Mixed-radix code of a segment ``{context variable: value}`` (last fastest).

        Raises:
            ValueError: without segments, or for a missing/unknown variable or value.
        """
        if not isinstance(segment, Mapping):
            raise ValueError(f"a segment must be a mapping {{variable: value}}, got {segment!r}")
        if not self.segments:
            raise ValueError(f"segment {dict(segment)!r} given but the space declares no segments")
        unknown = [v for v in segment if v not in self.segment_names]
        if unknown:
            raise ValueError(
                f"segment names unknown context variable(s) {unknown}; "
                f"valid: {list(self.segment_names)}"
            )
        code = 0
        for name, values in self.segments:
            if name not in segment:
                raise ValueError(
                    f"segment {dict(segment)!r} lacks context variable {name!r}; "
                    f"valid values: {list(values)}"
                )
            value = str(segment[name])
            if value not in values:
                raise ValueError(
                    f"unknown value {value!r} of context variable {name!r}; "
                    f"valid values: {list(values)}"
                )
            code = code * len(values) + values.index(value)
        return code

    def segment_of(self, code: int) -> dict[str, str]:
        """The segment ``{context variable: value}`` of a segment code."""
        code = int(code)
        if not 0 <= code < self.num_segments:
            raise ValueError(f"segment code {code} is out of range [0, {self.num_segments})")
        out = {}
        for name, values in reversed(self.segments):
            code, r = divmod(code, len(values))
            out[name] = values[r]
        return dict(reversed(list(out.items())))

    def segment_label(self, code: int) -> str:
        """A segment as text, e.g. ``"member=prime"`` (``", "`` between variables)."""
        return ", ".join(f"{k}={v}" for k, v in self.segment_of(code).items())

    # ------------------------------------------------------------------- single layouts
    def encode(self, layout: Mapping[str, str]) -> tuple[int, ...]:
        """Variant codes of a layout given as ``{component: variant label}``.

        Raises:
            ValueError: when a component is missing or unknown, or a label is not a variant.
        """
        if not isinstance(layout, Mapping):
            raise ValueError(f"a layout must be a mapping {{component: variant}}, got {layout!r}")
        unknown = [c for c in layout if c not in self.components]
        if unknown:
            raise ValueError(
                f"layout names unknown component(s) {unknown}; valid: {list(self.components)}"
            )
        codes = []
        for k, comp in enumerate(self.components):
            if comp not in layout:
                raise ValueError(f"layout {dict(layout)} lacks component {comp!r}")
            label = str(layout[comp])
            if label not in self._lookup[k]:
                raise ValueError(
                    f"unknown variant {label!r} for component {comp!r}; "
                    f"valid variants: {list(self.variants[k])}"
                )
            codes.append(self._lookup[k][label])
        return tuple(codes)

    def decode(self, codes: Sequence[int]) -> dict[str, str]:
        """Layout ``{component: label}`` of a code tuple."""
        pairs = zip(self.components, codes, strict=True)
        return {c: self.variants[k][int(x)] for k, (c, x) in enumerate(pairs)}

    def is_allowed(self, layout: Mapping[str, str] | Sequence[int]) -> bool:
        """Whether a layout (labels mapping or code sequence) is allowed by the rules."""
        codes = self.encode(layout) if isinstance(layout, Mapping) else tuple(layout)
        return not any(all(codes[k] == v for k, v in rule) for rule in self.forbidden)

    def violated_rule(
        self, codes: Sequence[int], include_retired: bool = True
    ) -> dict[str, str] | None:
        """The first forbidden rule a code tuple matches, as labels, or None.

        ``include_retired=False`` ignores the one-entry rules of retired variants.
        """
        for rule in self._rules(include_retired):
            if all(codes[k] == v for k, v in rule):
                return {self.components[k]: self.variants[k][v] for k, v in rule}
        return None

    def index(self, layout: Mapping[str, str]) -> int:
        """Mixed-radix index of an allowed layout (exact Python int for any space size).

        Raises:
            ValueError: for unknown components/variants or a forbidden layout.
        """
        codes = self.encode(layout)
        rule = self.violated_rule(codes)
        if rule is not None:
            raise ValueError(f"layout {dict(layout)} is forbidden by rule {rule}")
        return self.index_of_codes(codes)

    def index_of_codes(self, codes: Sequence[int]) -> int:
        """Mixed-radix index of one code tuple, an exact Python int for any space size.

        The vectorised int64 form for spaces below 2^63 layouts is :meth:`indices`.
        """
        return sum(int(x) * s for x, s in zip(codes, self.strides, strict=True))

    def codes_of(self, i: int) -> tuple[int, ...]:
        """Variant codes of index ``i`` (no allowed-check)."""
        i = int(i)
        if not 0 <= i < self.size:
            raise ValueError(f"layout index {i} is out of range [0, {self.size})")
        out = []
        for n in reversed(self.cardinalities):
            i, r = divmod(i, n)
            out.append(r)
        return tuple(reversed(out))

    def layout(self, i: int) -> dict[str, str]:
        """The layout ``{component: label}`` at index ``i``.

        Raises:
            ValueError: if ``i`` is out of range or the layout there is forbidden.
        """
        codes = self.codes_of(i)
        rule = self.violated_rule(codes)
        if rule is not None:
            raise ValueError(f"layout index {i} is forbidden by rule {rule}")
        return self.decode(codes)

    # ---------------------------------------------------------------- vectorised (numpy)
    def _require_int64(self) -> None:
        if self.size > _INT64_LIMIT:
            raise ValueError(
                f"space of {self.size} layouts exceeds int64 indices; use index()/layout() "
                "with Python ints or chunk via codes_range()"
            )

    def indices(self, codes: np.ndarray) -> np.ndarray:
        """int64 indices of an ``(n, K)`` code array (spaces below 2^63 layouts)."""
        self._require_int64()
        codes = np.asarray(codes, dtype=np.int64)
        return codes @ np.asarray(self.strides, dtype=np.int64)

    def codes(self, indices: np.ndarray) -> np.ndarray:
        """``(n, K)`` int32 code array of int64 indices (spaces below 2^63 layouts)."""
        self._require_int64()
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            raise ValueError(f"layout indices must lie in [0, {self.size})")
        out = np.empty(idx.shape + (self.num_components,), dtype=np.int32)
        rest = idx.copy()
        for k in range(self.num_components - 1, -1, -1):
            n = self.cardinalities[k]
            out[..., k] = rest % n
            rest //= n
        return out

    def codes_range(self, start: int, n: int) -> np.ndarray:
        """Codes of the ``n`` consecutive indices ``start, start+1, ...`` as ``(n, K)`` int32.

        Works for spaces of any size: ``start`` is a Python int, and only ``n`` rows are made.
        """
        start = int(start)
        n = int(min(n, self.size - start))
        if start < 0 or n < 0:
            raise ValueError(f"range start {start} is outside [0, {self.size})")
        digits = self.codes_of(start) if n > 0 else (0,) * self.num_components
        out = np.empty((n, self.num_components), dtype=np.int32)
        carry = np.arange(n, dtype=np.int64)
        for k in range(self.num_components - 1, -1, -1):
            card = self.cardinalities[k]
            total = carry + digits[k]
            out[:, k] = total % card
            carry = total // card
        return out

    def _rules(self, include_retired: bool) -> tuple[tuple[tuple[int, int], ...], ...]:
        if include_retired or not self.retired:
            return self.forbidden
        user = set(self._user_rules())
        return tuple(r for r in self.forbidden if r in user)

    def _user_rules(self) -> list[tuple[tuple[int, int], ...]]:
        # A retired variant's one-entry rule is not a user rule (to_dict writes it apart).
        retired = set(self.retired)
        return [r for r in self.forbidden if not (len(r) == 1 and r[0] in retired)]

    def allowed_mask(self, codes: np.ndarray, include_retired: bool = True) -> np.ndarray:
        """Boolean mask over the rows of an ``(..., K)`` code array: True where allowed.

        With ``include_retired=False`` layouts holding retired variants count as allowed
        (what observed data may contain).
        """
        codes = np.asarray(codes)
        mask = np.ones(codes.shape[:-1], dtype=bool)
        for rule in self._rules(include_retired):
            hit = np.ones(codes.shape[:-1], dtype=bool)
            for k, v in rule:
                hit &= codes[..., k] == v
            mask &= ~hit
        return mask

    def forbidden_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Rules as dense arrays for traced code: ``(wanted, active)``, both ``(R, K)``.

        ``active[r, k]`` says rule ``r`` constrains component ``k`` and ``wanted[r, k]`` is
        the variant code it names; a layout ``x`` is forbidden iff for some ``r`` every active
        ``k`` has ``x[k] == wanted[r, k]``.
        """
        R, K = len(self.forbidden), self.num_components
        wanted = np.zeros((R, K), dtype=np.int32)
        active = np.zeros((R, K), dtype=bool)
        for r, rule in enumerate(self.forbidden):
            for k, v in rule:
                wanted[r, k] = v
                active[r, k] = True
        return wanted, active

    def iter_chunks(
        self, chunk_size: int = 65536, allowed_only: bool = True
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stream the space as ``(start index, codes)`` chunks of consecutive indices.

        Memory is ``O(chunk_size * K)`` whatever the size of the space. With
        ``allowed_only`` the forbidden rows are dropped from each chunk (so the rows' indices
        are no longer contiguous; recover them with :meth:`indices`).
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        start = 0
        while start < self.size:
            codes = self.codes_range(start, chunk_size)
            if allowed_only and self.forbidden:
                codes = codes[self.allowed_mask(codes)]
            yield start, codes
            start += chunk_size

    def frame(self, codes: np.ndarray):
        """A pandas DataFrame of layouts: ``index`` plus one label column per component."""

        codes = np.asarray(codes)
        data: dict[str, Any] = {}
        if self.size <= _INT64_LIMIT:
            data["index"] = self.indices(codes)
        else:
            strides = self.strides
            data["index"] = [
                sum(int(x) * s for x, s in zip(row, strides, strict=True)) for row in codes
            ]
        for k, comp in enumerate(self.components):
            labels = np.asarray(self.variants[k], dtype=object)
            data[comp] = pd.Categorical.from_codes(codes[:, k], categories=list(labels))
        return pd.DataFrame(data)

    # -------------------------------------------------- variant lifecycle and attributes
    def with_variants(
        self,
        variants: Mapping[str, Sequence[str]],
        attributes: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    ) -> LayoutSpace:
        """A new space with variants appended to existing components.

        Existing variants keep their codes (new ones get the next codes), so code arrays,
        label tables and posteriors of this space line up with the new one. The mixed-radix
        *index* of a layout changes when a component grows (its strides change): map an old
        index ``i`` with ``new.index(old.layout(i))``, or codes with :meth:`codes_from`.
        Files that store labels (designs, observations) need no mapping.

        Args:
            variants: ``{component: [new labels]}``; components must exist, labels be new.
            attributes: attributes of the new variants, ``{component: {label: {name:
                value}}}``; required for every new variant of a component with attributes.

        Returns:
            The new :class:`LayoutSpace` (this one is unchanged).

        Raises:
            ValueError: for an unknown component, a label that already exists, or
                missing/inconsistent attributes.

        Examples:
            >>> space = LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b"]})
            >>> space.with_variants({"headline": ["h3"]}).variants[0]
            ('h1', 'h2', 'h3')
        """
        data = self.to_dict()
        if not isinstance(variants, Mapping) or not variants:
            raise ValueError("with_variants needs a mapping {component: [new variant labels]}")
        for comp, labels in variants.items():
            if comp not in data["components"]:
                raise ValueError(
                    f"with_variants: unknown component {comp!r}; valid: {list(self.components)}"
                )
            if isinstance(labels, str) or not isinstance(labels, Sequence):
                raise ValueError(
                    f"with_variants: component {comp!r} needs a list of labels, got {labels!r}"
                )
            for label in labels:
                if str(label) in data["components"][comp]:
                    raise ValueError(
                        f"with_variants: component {comp!r} already has variant {label!r}"
                    )
            data["components"][comp] = data["components"][comp] + [str(v) for v in labels]
        for comp, table in (attributes or {}).items():
            if not isinstance(table, Mapping):
                raise ValueError(f"attributes of component {comp!r} must be a mapping")
            merged = data.setdefault("attributes", {}).setdefault(comp, {})
            merged.update({str(k): v for k, v in table.items()})
        return LayoutSpace.from_dict(data, source="with_variants")

    def without_variants(self, variants: Mapping[str, Sequence[str]]) -> LayoutSpace:
        """A new space in which variants are retired.

        A retired variant keeps its code, its attributes and its place in the model: data
        that contain it are still valid :class:`~layoutopt.Observations` and still inform
        the shared effects (intercept, the other components, attribute coefficients). No
        layout holding it is allowed any more, so it is never scored, picked or proposed
        (it acts as a one-entry forbidden rule). Indices do not change.

        Args:
            variants: ``{component: [labels to retire]}``.

        Returns:
            The new :class:`LayoutSpace`.

        Raises:
            ValueError: for an unknown component or variant, or when every variant of a
                component would be retired.
        """
        data = self.to_dict()
        if not isinstance(variants, Mapping) or not variants:
            raise ValueError("without_variants needs a mapping {component: [labels]}")
        retired = data.setdefault("retired", {})
        for comp, labels in variants.items():
            if isinstance(labels, str) or not isinstance(labels, Sequence):
                raise ValueError(
                    f"without_variants: component {comp!r} needs a list of labels, got {labels!r}"
                )
            have = retired.setdefault(comp, [])
            retired[comp] = have + [str(v) for v in labels if str(v) not in have]
        return LayoutSpace.from_dict(data, source="without_variants")

    def codes_from(self, other: LayoutSpace, codes: np.ndarray) -> np.ndarray:
        """Translate an ``(N, K)`` code array of ``other`` into this space's codes.

        Components are matched by name and variants by label, so codes from a space before
        :meth:`with_variants` (or with components in another order) line up.

        Raises:
            ValueError: when a component or a used variant of ``other`` is not in this space.
        """
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, other.num_components)
        out = np.empty((codes.shape[0], self.num_components), dtype=np.int32)
        for k, comp in enumerate(self.components):
            if comp not in other.components:
                raise ValueError(
                    f"component {comp!r} is not in the other space {list(other.components)}"
                )
            j = other.components.index(comp)
            table = np.full(other.cardinalities[j], -1, dtype=np.int64)
            for v, label in enumerate(other.variants[j]):
                table[v] = self._lookup[k].get(label, -1)
            mapped = table[codes[:, j]] if codes.size else np.zeros(0, np.int64)
            if np.any(mapped < 0):
                bad = other.variants[j][int(codes[np.flatnonzero(mapped < 0)[0], j])]
                raise ValueError(
                    f"variant {bad!r} of component {comp!r} is not in this space; "
                    f"valid variants: {list(self.variants[k])}"
                )
            out[:, k] = mapped
        return out

    @property
    def has_attributes(self) -> bool:
        """Whether any component declares variant attributes."""
        return any(self.attributes)

    def attribute_columns(self, k: int) -> tuple[str, ...]:
        """Names of the columns of :meth:`attribute_matrix` for component ``k``.

        A boolean or numeric attribute ``name`` gives one column ``name``; a category gives
        one column ``name=value`` per category except the baseline (the category of the
        first variant listed).
        """
        return tuple(name for name, _ in _attribute_columns(self.attributes[k]))

    def attribute_matrix(self, k: int) -> np.ndarray:
        """The ``(n_k, p_k)`` float64 attribute design ``a_k(v)`` of component ``k``.

        Booleans are 0/1; categories are one-hot, baseline coded; numbers are standardised
        over the component's variants (mean 0, sd 1; centred only when all are equal).
        Empty (``p_k = 0``) when the component has no attributes.
        """
        cols = [col for _, col in _attribute_columns(self.attributes[k])]
        if not cols:
            return np.zeros((self.cardinalities[k], 0))
        return np.stack(cols, axis=1)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-data form ``{"components": {...}, "forbidden": [...]}`` (JSON/TOML-able).

        ``"segments"`` (``{context variable: [values]}``), ``"attributes"`` (``{component:
        {label: {name: value}}}``) and ``"retired"`` (``{component: [labels]}``) are added
        when the space has them.
        """
        out: dict[str, Any] = {
            "components": {c: list(v) for c, v in zip(self.components, self.variants, strict=True)},
            "forbidden": [
                {self.components[k]: self.variants[k][v] for k, v in rule}
                for rule in self._user_rules()
            ],
        }
        if self.segments:
            out["segments"] = {name: list(values) for name, values in self.segments}
        out.update(_lifecycle_dict(self))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "space") -> LayoutSpace:
        """Build from the plain-data form written by :meth:`to_dict` or read from TOML."""
        if "components" not in data or not isinstance(data["components"], Mapping):
            raise ValueError(
                f"{source}: needs a [components] table mapping component names to variant lists"
            )
        extra = set(data) - {"components", "forbidden", "segments", "attributes", "retired"}
        if extra:
            raise ValueError(
                f"{source}: unknown top-level key(s) {sorted(extra)}; "
                "valid: 'components', 'forbidden', 'segments', 'attributes', 'retired'"
            )
        if "segments" in data and not isinstance(data["segments"], Mapping):
            raise ValueError(
                f"{source}: 'segments' must be a table {{context variable: [values]}}; in TOML "
                "write [segments] then one line per variable"
            )
        if isinstance(data.get("forbidden"), Mapping):
            raise ValueError(
                f"{source}: 'forbidden' must be a list of rules; in TOML write each rule as "
                "[[forbidden]] (double brackets)"
            )
        try:
            return cls(
                data["components"],
                data.get("forbidden") or None,
                data.get("segments") or None,
                attributes=data.get("attributes") or None,
                retired=data.get("retired") or None,
            )
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> LayoutSpace:
        """Read a space from a TOML file.

        Format::

            [components]
            headline = ["h1", "h2", "h3"]
            image = ["img1", "img2", "img3"]

            [[forbidden]]
            headline = "h2"
            image = "img3"

            [segments]            # optional: context variables and their values
            member = ["prime", "non_prime"]

            [attributes.headline.h1]      # optional: variant attributes
            free = true
            theme = "speed"

            [retired]                     # optional: retired variants
            image = ["img1"]

        Raises:
            ValueError: naming the file, for unreadable TOML or an invalid space.
        """
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such layout-space file") from None
        except IsADirectoryError:
            raise ValueError(f"{path}: is a directory; give a layout-space TOML file") from None
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{path}: not UTF-8 text (byte {err.object[err.start : err.start + 1]!r} at "
                f"offset {err.start}); save the TOML file as UTF-8"
            ) from None
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML ({err})") from None
        except OSError as err:
            raise ValueError(
                f"{path}: cannot read the layout-space file ({err.strerror})"
            ) from None
        return cls.from_dict(data, source=str(path))

    def to_toml(self) -> str:
        """The space as TOML text that :meth:`from_toml` reads back."""

        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = ["[components]"]
        for c, vs in zip(self.components, self.variants, strict=True):
            lines.append(f"{q(c)} = [{', '.join(q(v) for v in vs)}]")
        for rule in self.to_dict()["forbidden"]:
            lines += ["", "[[forbidden]]"] + [f"{q(c)} = {q(v)}" for c, v in rule.items()]
        if self.segments:
            lines += ["", "[segments]"]
            lines += [f"{q(n)} = [{', '.join(q(v) for v in vs)}]" for n, vs in self.segments]
        lines += _lifecycle_toml(self, q)
        return "\n".join(lines) + "\n"


def _check_segments(segments, components: tuple[str, ...]) -> tuple:
    """Validated ``((variable, (values...)), ...)`` of a ``segments=`` argument."""
    if segments is None:
        return ()
    if not isinstance(segments, Mapping) or len(segments) == 0:
        raise ValueError(
            "segments must be a non-empty mapping {context variable: [values, ...]}, "
            f"got {segments!r}"
        )
    out = []
    for name, values in segments.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"context variable names must be non-empty strings, got {name!r}")
        if name in components:
            raise ValueError(
                f"context variable {name!r} is also a component; a data column can be only one"
            )
        if name.strip().lower() in RESERVED_NAMES:
            raise ValueError(
                f"context variable name {name!r} is reserved (a data, output or posterior "
                f"name); reserved (in any case): {', '.join(RESERVED_NAMES)}"
            )
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(
                f"context variable {name!r}: values must be a non-empty list, got {values!r}"
            )
        labels = tuple(str(v) for v in values)
        if len(set(labels)) != len(labels):
            raise ValueError(f"context variable {name!r} lists a value twice: {list(labels)}")
        out.append((name, labels))
    return tuple(out)


# ------------------------------------------------------------ retired variants and attributes
def _parse_retired(space: LayoutSpace, retired) -> tuple[tuple[int, int], ...]:
    """Validate ``{component: [labels]}`` of retired variants into sorted (k, code) pairs."""
    if not retired:
        return ()
    if not isinstance(retired, Mapping):
        raise ValueError(f"retired must be a mapping {{component: [labels]}}, got {retired!r}")
    pairs = set()
    for comp, labels in retired.items():
        if comp not in space.components:
            raise ValueError(
                f"retired names unknown component {comp!r}; valid: {list(space.components)}"
            )
        k = space.components.index(comp)
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise ValueError(f"retired variants of {comp!r} must be a list, got {labels!r}")
        for label in labels:
            if str(label) not in space._lookup[k]:
                raise ValueError(
                    f"retired names unknown variant {label!r} of component {comp!r}; "
                    f"valid variants: {list(space.variants[k])}"
                )
            pairs.add((k, space._lookup[k][str(label)]))
        if sum(1 for kk, _ in pairs if kk == k) >= space.cardinalities[k]:
            raise ValueError(
                f"cannot retire every variant of component {comp!r}; add a new one first"
            )
    return tuple(sorted(pairs))


def _attribute_kind(value: Any) -> str | None:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, str):
        return "category"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number" if math.isfinite(float(value)) else None
    return None


def _parse_attributes(space: LayoutSpace, attributes) -> tuple:
    """Validate the attribute tables into, per component, ``((name, values per variant),)``."""
    empty = tuple(() for _ in space.components)
    if not attributes:
        return empty
    if not isinstance(attributes, Mapping):
        raise ValueError(
            f"attributes must be a mapping {{component: {{label: {{name: value}}}}}}, "
            f"got {attributes!r}"
        )
    out = list(empty)
    for comp, table in attributes.items():
        if comp not in space.components:
            raise ValueError(
                f"attributes name unknown component {comp!r}; valid: {list(space.components)}"
            )
        k = space.components.index(comp)
        if not isinstance(table, Mapping):
            raise ValueError(f"attributes of component {comp!r} must map labels to tables")
        for label, values in table.items():
            if str(label) not in space._lookup[k]:
                raise ValueError(
                    f"attributes of component {comp!r} name unknown variant {label!r}; "
                    f"valid variants: {list(space.variants[k])}"
                )
            if not isinstance(values, Mapping):
                raise ValueError(
                    f"attributes of {comp!r} variant {label!r} must be a table "
                    f"{{name: value}}, got {values!r}"
                )
        table = {str(lab): vals for lab, vals in table.items()}
        names: list[str] = []
        for vals in table.values():
            names += [str(n) for n in vals if str(n) not in names]
        columns = []
        for name in names:
            kind = None
            values = []
            for label in space.variants[k]:
                vals = {str(n): v for n, v in table.get(label, {}).items()}
                if name not in vals:
                    raise ValueError(
                        f"attributes of component {comp!r}: variant {label!r} has no value "
                        f"for {name!r}; every variant of {comp!r} needs one"
                    )
                value = vals[name]
                this = _attribute_kind(value)
                if this is None:
                    raise ValueError(
                        f"attributes of component {comp!r}: variant {label!r} has {name} = "
                        f"{value!r}; valid values are booleans, strings or finite numbers"
                    )
                if kind is not None and this != kind:
                    raise ValueError(
                        f"attributes of component {comp!r}: {name!r} is a {kind} for some "
                        f"variants but variant {label!r} has {value!r} (a {this}); use one "
                        "type per attribute"
                    )
                kind = this
                if isinstance(value, np.generic):
                    value = value.item()  # plain Python values: hashable, JSON/TOML-able
                values.append(bool(value) if kind == "bool" else value)
            columns.append((name, tuple(values)))
        out[k] = tuple(columns)
    return tuple(out)


def _attribute_columns(columns) -> list[tuple[str, np.ndarray]]:
    """Coded design columns ``(name, (n_k,) float64)`` of one component's attributes."""
    out = []
    for name, values in columns:
        kind = _attribute_kind(values[0])
        if kind == "bool":
            out.append((name, np.asarray(values, dtype=np.float64)))
        elif kind == "category":
            levels = list(dict.fromkeys(values))
            for level in levels[1:]:  # the first variant's category is the baseline
                out.append((f"{name}={level}", np.asarray([v == level for v in values], float)))
        else:
            x = np.asarray(values, dtype=np.float64)
            sd = x.std()
            out.append((name, (x - x.mean()) / (sd if sd > 0 else 1.0)))
    return out


def _lifecycle_dict(space: LayoutSpace) -> dict[str, Any]:
    """The ``attributes`` and ``retired`` entries of :meth:`LayoutSpace.to_dict`."""
    out: dict[str, Any] = {}
    if space.has_attributes:
        out["attributes"] = {
            comp: {
                label: {name: values[v] for name, values in space.attributes[k]}
                for v, label in enumerate(space.variants[k])
            }
            for k, comp in enumerate(space.components)
            if space.attributes[k]
        }
    if space.retired:
        retired: dict[str, list[str]] = {}
        for k, v in space.retired:
            retired.setdefault(space.components[k], []).append(space.variants[k][v])
        out["retired"] = retired
    return out


def _lifecycle_toml(space: LayoutSpace, q) -> list[str]:
    """TOML lines for the attributes and retired variants (empty when there are none)."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return q(v) if isinstance(v, str) else repr(v)

    data = _lifecycle_dict(space)
    lines: list[str] = []
    for comp, table in data.get("attributes", {}).items():
        for label, values in table.items():
            lines += ["", f"[attributes.{q(comp)}.{q(label)}]"]
            lines += [f"{q(n)} = {value(v)}" for n, v in values.items()]
    if "retired" in data:
        lines += ["", "[retired]"]
        lines += [f"{q(c)} = [{', '.join(q(v) for v in vs)}]" for c, vs in data["retired"].items()]
    return lines
