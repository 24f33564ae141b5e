"""Segments of a layout space: context variables, their values and mixed-radix segment codes.

A segment is one combination of context values (e.g. ``{"member": "prime"}``), addressed by
a mixed-radix code whose last variable varies fastest. ``segments`` below is always the
validated ``((variable, (values...)), ...)`` tuple a :class:`LayoutSpace` holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["check_segments", "segment_code", "segment_of"]


def check_segments(segments, components: tuple[str, ...], reserved: Sequence[str]) -> tuple:
    """Validated ``((variable, (values...)), ...)`` of a ``segments=`` argument.

    Args:
        segments: ``{context variable: [values]}``, or None.
        components: the component names (a variable may not share one).
        reserved: names no variable may take (compared stripped and lower-cased).

    Raises:
        ValueError: for an empty mapping, an empty, duplicate-valued or reserved variable, or
            one named like a component.
    """
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
        if name.strip().lower() in reserved:
            raise ValueError(
                f"context variable name {name!r} is reserved (a data, output or posterior "
                f"name); reserved (in any case): {', '.join(reserved)}"
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


def segment_code(segments: tuple, segment: Mapping[str, str]) -> int:
    """Mixed-radix code of a segment ``{context variable: value}`` (last fastest).

    Raises:
        ValueError: without segments, or for a missing/unknown variable or value.
    """
    if not isinstance(segment, Mapping):
        raise ValueError(f"a segment must be a mapping {{variable: value}}, got {segment!r}")
    if not segments:
        raise ValueError(f"segment {dict(segment)!r} given but the space declares no segments")
    names = [name for name, _ in segments]
    unknown = [v for v in segment if v not in names]
    if unknown:
        raise ValueError(
            f"segment names unknown context variable(s) {unknown}; valid: {list(names)}"
        )
    code = 0
    for name, values in segments:
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


def segment_of(segments: tuple, num_segments: int, code: int) -> dict[str, str]:
    """The segment ``{context variable: value}`` of a segment code.

    Raises:
        ValueError: for a code outside ``[0, num_segments)``.
    """
    code = int(code)
    if not 0 <= code < num_segments:
        raise ValueError(f"segment code {code} is out of range [0, {num_segments})")
    out = {}
    for name, values in reversed(segments):
        code, r = divmod(code, len(values))
        out[name] = values[r]
    return dict(reversed(list(out.items())))
