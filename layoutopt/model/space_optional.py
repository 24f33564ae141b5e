"""Optional components: a component that a layout may leave out, as one more variant.

An optional component gets the variant :data:`ABSENT` (the empty label ``""``) as its code 0,
before the labels the user lists: "the component was not shown". The model estimates it like
any variant (its main effect, its pairs with the other components), designs cover it and
the optimisers may pick it. Code 0 keeps the user's variants' codes stable when variants are
appended later (:meth:`LayoutSpace.with_variants`).

On input, ``None`` (Python), a missing value (NaN / NA in a frame) and an empty cell (CSV)
all mean absent, and only for an optional component; elsewhere they stay an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["ABSENT", "is_missing", "label_of", "parse_optional"]

#: The variant label of an optional component that is not shown (an empty CSV cell).
ABSENT = ""


def parse_optional(
    optional: Sequence[str] | None,
    components: Sequence[str],
    variants: Sequence[tuple[str, ...]],
) -> tuple[int, ...]:
    """Validate ``optional=[component, ...]`` into sorted component indices.

    Args:
        optional: names of the optional components, or None.
        components: the component names, in order.
        variants: per component, the labels the user listed (without :data:`ABSENT`).

    Returns:
        The sorted indices of the optional components.

    Raises:
        ValueError: for a non-list, an unknown component, or an optional component that
            lists the empty label itself (it is the absent state already).
    """
    if optional is None:
        return ()
    if isinstance(optional, str) or not isinstance(optional, Sequence):
        raise ValueError(
            f"optional must be a list of component names, e.g. ['reviews'], got {optional!r}"
        )
    out = set()
    for comp in optional:
        if comp not in components:
            raise ValueError(
                f"optional names unknown component {comp!r}; valid components: {list(components)}"
            )
        k = list(components).index(comp)
        if ABSENT in variants[k]:
            raise ValueError(
                f"optional component {comp!r} lists the empty label {ABSENT!r}: that label "
                "is its absent state already; drop it from the variants"
            )
        out.add(k)
    return tuple(sorted(out))


def is_missing(value: Any) -> bool:
    """Whether a cell means "no value": None, a float NaN or pandas' NA/NaT."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        return bool(value != value)  # NaN-like scalars
    except (TypeError, ValueError):  # pandas' NA has no truth value
        return True


def label_of(value: Any, optional: bool) -> str | None:
    """The label of one layout entry: missing values are :data:`ABSENT` for an optional
    component and None (no label) for any other."""
    if is_missing(value):
        return ABSENT if optional else None
    return str(value)
