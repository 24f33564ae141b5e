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

    Attributes:
        components: tuple of component names, in order.
        variants: tuple (one per component) of tuples of variant labels.
        cardinalities: number of variants per component, ``(n_1, ..., n_K)``.
        forbidden: the rules as tuples of ``(component index, variant code)`` pairs.
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
    _lookup: tuple[dict[str, int], ...] = field(default=(), repr=False, compare=False)
    _num_allowed: int = field(default=0, repr=False, compare=False)
    _cardinalities: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _strides: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __init__(
        self,
        components: Mapping[str, Sequence[str]],
        forbidden: Sequence[Mapping[str, str]] | None = None,
        segments: Mapping[str, Sequence[str]] | None = None,
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
        return hash((self.components, self.variants, self.forbidden, self.segments))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayoutSpace):
            return NotImplemented
        return (self.components, self.variants, self.forbidden, self.segments) == (
            other.components,
            other.variants,
            other.forbidden,
            other.segments,
        )

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

    def violated_rule(self, codes: Sequence[int]) -> dict[str, str] | None:
        """The first forbidden rule a code tuple matches, as labels, or None."""
        for rule in self.forbidden:
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

    def allowed_mask(self, codes: np.ndarray) -> np.ndarray:
        """Boolean mask over the rows of an ``(..., K)`` code array: True where allowed."""
        codes = np.asarray(codes)
        mask = np.ones(codes.shape[:-1], dtype=bool)
        for rule in self.forbidden:
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

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-data form ``{"components": {...}, "forbidden": [...]}`` (JSON/TOML-able),
        plus ``"segments": {...}`` when the space has segments."""
        out: dict[str, Any] = {
            "components": {c: list(v) for c, v in zip(self.components, self.variants, strict=True)},
            "forbidden": [
                {self.components[k]: self.variants[k][v] for k, v in rule}
                for rule in self.forbidden
            ],
        }
        if self.segments:
            out["segments"] = {name: list(values) for name, values in self.segments}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "space") -> LayoutSpace:
        """Build from the plain-data form written by :meth:`to_dict` or read from TOML."""
        if "components" not in data or not isinstance(data["components"], Mapping):
            raise ValueError(
                f"{source}: needs a [components] table mapping component names to variant lists"
            )
        extra = set(data) - {"components", "forbidden", "segments"}
        if extra:
            raise ValueError(
                f"{source}: unknown top-level key(s) {sorted(extra)}; "
                "valid: 'components', 'forbidden', 'segments'"
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
                data["components"], data.get("forbidden") or None, data.get("segments") or None
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
