"""The layout space: components, their variants, rules (forbidden combinations, slots without
repeats), mixed-radix indexing.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from layoutopt.model import (
    space_attributes,
    space_index,
    space_optional,
    space_rules,
    space_segments,
    space_toml,
    space_variants,
)

__all__ = ["LayoutSpace", "RESERVED_NAMES"]

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
        distinct: optional groups of components drawing from one pool of items (product
            slots), e.g. ``[("slot1", "slot2", "slot3")]``: no allowed layout holds one label
            twice within a group. The components of a group must list the same labels in
            the same order. Each group is one rule (not one forbidden rule per repeated
            pair): counted exactly, and respected by enumeration, designs, scoring,
            proposals and the exact optimisers. Pairwise effects between slots are kept.
        shared_effects: with distinct groups, give every item of a group one main effect
            shared by its slots, beside each slot's own deviation: ``m_k[v] = s[v] +
            e_k[v]`` (``s`` enters the model as attribute coefficients, see
            :func:`~layoutopt.model.priors.attribute_design`), so what an item did in one
            slot informs the others. Off by default (each slot learns on its own).
        optional: optional names of components a layout may leave out (e.g. ``["reviews"]``:
            no reviews block at all). Such a component gets the extra variant
            :data:`~layoutopt.model.space_optional.ABSENT` (the empty label ``""``) as its
            code 0, estimated like any variant; ``None`` in a layout, and a missing or empty
            cell in data, mean absent (only for these components). An optional component
            cannot be in a distinct group or carry attributes.

    Attributes:
        components: tuple of component names, in order.
        variants: tuple (one per component) of tuples of variant labels.
        cardinalities: number of variants per component, ``(n_1, ..., n_K)``.
        forbidden: the rules as tuples of ``(component index, variant code)`` pairs; a
            retired variant appears here as a one-entry rule, so everything that excludes
            forbidden layouts also excludes retired variants.
        retired: the retired variants as ``(component index, variant code)`` pairs.
        distinct: the distinct groups as sorted tuples of component indices.
        optional: the indices of the optional components.
        shared_effects: whether the items of each distinct group share a main effect.
        attributes: per component, a tuple of ``(attribute name, values per variant)``.
        segments: tuple of ``(context variable, (values...))`` pairs; empty without segments.

    Raises:
        ValueError: on an empty space or component, a duplicate component or variant label,
            a forbidden rule naming an unknown component or variant, an empty rule, a
            distinct group of unknown components or of components with different variants,
            or rules that together forbid every layout.

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
    distinct: tuple[tuple[int, ...], ...] = ()
    optional: tuple[int, ...] = ()
    shared_effects: bool = False
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
        distinct: Sequence[Sequence[str]] | None = None,
        optional: Sequence[str] | None = None,
        shared_effects: bool = False,
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
        absent = space_optional.parse_optional(optional, names, variants)
        for k in absent:
            variants[k] = (space_optional.ABSENT, *variants[k])
        object.__setattr__(self, "optional", absent)
        lookup = tuple({v: i for i, v in enumerate(vs)} for vs in variants)
        object.__setattr__(self, "components", tuple(names))
        object.__setattr__(self, "variants", tuple(variants))
        object.__setattr__(self, "_lookup", lookup)
        # derived fields, computed once (the space is immutable)
        card = tuple(len(v) for v in variants)
        object.__setattr__(self, "_cardinalities", card)
        object.__setattr__(self, "_strides", space_index.strides_of(card))

        rules = space_rules.parse_rules(forbidden, self.components, self.variants, lookup)
        # Variant lifecycle and attributes (issue 10): retired variants become one-entry rules.
        retired_pairs = space_rules.parse_retired(retired, self.components, self.variants, lookup)
        rules += [(kv,) for kv in retired_pairs]
        object.__setattr__(self, "retired", retired_pairs)
        table = attributes if isinstance(attributes, Mapping) else {}
        with_attributes = [names[k] for k in absent if table.get(names[k])]
        if with_attributes:
            raise ValueError(f"optional component(s) {with_attributes} cannot carry attributes")
        parsed = space_attributes.parse_attributes(attributes, self.components, self.variants)
        object.__setattr__(self, "attributes", parsed)
        object.__setattr__(self, "forbidden", tuple(dict.fromkeys(rules)))
        groups = space_rules.parse_distinct(distinct, self.components, self.variants)
        if any(k in absent for g in groups for k in g):
            raise ValueError("a component of a distinct group cannot be optional")
        if not isinstance(shared_effects, bool) or (shared_effects and not groups):
            raise ValueError(
                f"shared_effects={shared_effects!r}: True shares item effects across the slots "
                "of distinct groups, so it needs distinct=[...]; otherwise pass False"
            )
        object.__setattr__(self, "shared_effects", shared_effects)
        object.__setattr__(self, "distinct", groups)
        # derived once: inclusion-exclusion is exponential in the number of rules
        num_allowed = space_rules.count_allowed(self.forbidden, card, groups)
        object.__setattr__(self, "_num_allowed", num_allowed)
        if self.num_allowed == 0:
            raise ValueError("the forbidden and distinct rules forbid every layout in the space")
        segs = space_segments.check_segments(segments, self.components, RESERVED_NAMES)
        object.__setattr__(self, "segments", segs)

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
        """Exact number of allowed layouts (no forbidden rule matched, no distinct group
        repeating a label): closed form for the groups, inclusion-exclusion for the rules."""
        return self._num_allowed

    @property
    def strides(self) -> tuple[int, ...]:
        """Mixed-radix place values: ``index = sum_k x_k * strides[k]`` (Python ints)."""
        return self._strides

    def __hash__(self) -> int:
        return hash(_value_key(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayoutSpace):
            return NotImplemented
        return _value_key(self) == _value_key(other)

    def __repr__(self) -> str:
        comps = ", ".join(
            f"{c}[{n}]" for c, n in zip(self.components, self.cardinalities, strict=True)
        )
        segs = f", segments={self.num_segments}" if self.segments else ""
        segs += f", distinct groups={len(self.distinct)}" if self.distinct else ""
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
        return space_segments.segment_code(self.segments, segment)

    def segment_of(self, code: int) -> dict[str, str]:
        """The segment ``{context variable: value}`` of a segment code."""
        return space_segments.segment_of(self.segments, self.num_segments, code)

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
            label = space_optional.label_of(layout[comp], k in self.optional)
            if label is None:
                raise ValueError(
                    f"layout {dict(layout)} has no variant for component {comp!r}, which is "
                    f"not optional; valid variants: {list(self.variants[k])}"
                )
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
        return self.violated_rule(codes) is None

    def violated_rule(
        self, codes: Sequence[int], include_retired: bool = True
    ) -> dict[str, str] | None:
        """The first forbidden rule a code tuple matches, as labels, or None.

        A layout that repeats a label within a distinct group matches the rule
        ``{slot_a: label, slot_b: label}`` of the first two components holding it.
        ``include_retired=False`` ignores the one-entry rules of retired variants.
        """
        rules = space_rules.select_rules(self.forbidden, self.retired, include_retired)
        rule = space_rules.matched_rule(codes, rules) or space_rules.repeated_pair(
            codes, self.distinct
        )
        if rule is None:
            return None
        return {self.components[k]: self.variants[k][v] for k, v in rule}

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
        return space_index.index_of_codes(codes, self.strides)

    def codes_of(self, i: int) -> tuple[int, ...]:
        """Variant codes of index ``i`` (no allowed-check)."""
        return space_index.codes_of_index(i, self.cardinalities)

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
    def indices(self, codes: np.ndarray) -> np.ndarray:
        """int64 indices of an ``(n, K)`` code array (spaces below 2^63 layouts)."""
        space_index.require_int64(self.size)
        return space_index.indices_of_codes(codes, self.strides)

    def codes(self, indices: np.ndarray) -> np.ndarray:
        """``(n, K)`` int32 code array of int64 indices (spaces below 2^63 layouts)."""
        space_index.require_int64(self.size)
        return space_index.codes_of_indices(indices, self.cardinalities)

    def codes_range(self, start: int, n: int) -> np.ndarray:
        """Codes of the ``n`` consecutive indices ``start, start+1, ...`` as ``(n, K)`` int32.

        Works for spaces of any size: ``start`` is a Python int, and only ``n`` rows are made.
        """
        return space_index.codes_range(start, n, self.cardinalities)

    def allowed_mask(self, codes: np.ndarray, include_retired: bool = True) -> np.ndarray:
        """Boolean mask over the rows of an ``(..., K)`` code array: True where allowed.

        With ``include_retired=False`` layouts holding retired variants count as allowed
        (what observed data may contain).
        """
        rules = space_rules.select_rules(self.forbidden, self.retired, include_retired)
        return space_rules.allowed_mask(codes, rules, self.distinct)

    @property
    def has_rules(self) -> bool:
        """Whether any layout of the product is excluded (forbidden rules or distinct groups)."""
        return bool(self.forbidden or self.distinct)

    def forbidden_arrays(self) -> space_rules.RuleArrays:
        """Every rule as dense arrays for traced code (:class:`~layoutopt.model.space_rules.
        RuleArrays`: forbidden rules as ``(wanted, active)``, distinct groups as ``pairs``)."""
        return space_rules.forbidden_arrays(self.forbidden, self.num_components, self.distinct)

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
            if allowed_only and self.has_rules:
                codes = codes[self.allowed_mask(codes)]
            yield start, codes
            start += chunk_size

    def frame(self, codes: np.ndarray):
        """A pandas DataFrame of layouts: ``index`` plus one label column per component."""

        codes = np.asarray(codes)
        data: dict[str, Any] = {}
        if self.size <= space_index.INT64_LIMIT:
            data["index"] = self.indices(codes)
        else:
            data["index"] = [space_index.index_of_codes(row, self.strides) for row in codes]
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
        data = space_variants.add_variants(self.to_dict(), variants, attributes)
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
        data = space_variants.retire_variants(self.to_dict(), variants)
        return LayoutSpace.from_dict(data, source="without_variants")

    def codes_from(self, other: LayoutSpace, codes: np.ndarray) -> np.ndarray:
        """Translate an ``(N, K)`` code array of ``other`` into this space's codes.

        Components are matched by name and variants by label, so codes from a space before
        :meth:`with_variants` (or with components in another order) line up.

        Raises:
            ValueError: when a component or a used variant of ``other`` is not in this space.
        """
        return space_variants.translate_codes(self, other, codes)

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
        return tuple(name for name, _ in space_attributes.attribute_columns(self.attributes[k]))

    def attribute_matrix(self, k: int) -> np.ndarray:
        """The ``(n_k, p_k)`` float64 attribute design ``a_k(v)`` of component ``k``.

        Booleans are 0/1; categories are one-hot, baseline coded; numbers are standardised
        over the component's variants (mean 0, sd 1; centred only when all are equal).
        Empty (``p_k = 0``) when the component has no attributes.
        """
        cols = [col for _, col in space_attributes.attribute_columns(self.attributes[k])]
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
            "components": {
                c: list(v[1:] if k in self.optional else v)
                for k, (c, v) in enumerate(zip(self.components, self.variants, strict=True))
            },
            "forbidden": [
                {self.components[k]: self.variants[k][v] for k, v in rule}
                for rule in space_rules.user_rules(self.forbidden, self.retired)
            ],
        }
        if self.segments:
            out["segments"] = {name: list(values) for name, values in self.segments}
        if self.distinct:
            out["distinct"] = [[self.components[k] for k in g] for g in self.distinct]
        if self.optional:
            out["optional"] = [self.components[k] for k in self.optional]
        if self.shared_effects:
            out["shared_effects"] = True
        names, labels = self.components, self.variants
        if self.has_attributes:
            out["attributes"] = space_attributes.attributes_table(names, labels, self.attributes)
        if self.retired:
            out["retired"] = space_variants.retired_table(names, labels, self.retired)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "space") -> LayoutSpace:
        """Build from the plain-data form written by :meth:`to_dict` or read from TOML."""
        space_toml.check_space_data(data, source)
        try:
            return cls(
                data["components"],
                data.get("forbidden") or None,
                data.get("segments") or None,
                attributes=data.get("attributes") or None,
                retired=data.get("retired") or None,
                distinct=data.get("distinct") or None,
                optional=data.get("optional") or None,
                shared_effects=data.get("shared_effects", False),
            )
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> LayoutSpace:
        """Read a space from a TOML file (the format: :mod:`layoutopt.model.space_toml`).

        The tables that say how to read data into the space (``[columns]``, and a
        campaign's ``[objective]``, ``[guardrails]``, ``[control]``:
        ``space_toml.READER_TABLES``) are left out; read them with
        :func:`layoutopt.data.mapping.read_campaign_toml`.

        Raises:
            ValueError: naming the file, for unreadable TOML or an invalid space.
        """
        path = Path(path)
        data = space_toml.read_toml(path)
        tables = {k: v for k, v in data.items() if k not in space_toml.READER_TABLES}
        return cls.from_dict(tables, source=str(path))

    def to_toml(self) -> str:
        """The space as TOML text that :meth:`from_toml` reads back."""
        return space_toml.toml_text(self.to_dict())


def _value_key(space: LayoutSpace) -> tuple:
    """What equality and hashing of a space compare: every field that changes its meaning."""
    key = (space.components, space.variants, space.forbidden, space.retired, space.attributes)
    return key + (space.segments, space.distinct, space.optional, space.shared_effects)
