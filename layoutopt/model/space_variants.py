"""The variant lifecycle of a layout space: adding and retiring variants, translating codes.

Adding and retiring work on the plain-data form of a space (``LayoutSpace.to_dict()``), so a
new space is always built, and validated, by the one constructor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["add_variants", "retire_variants", "retired_table", "translate_codes"]


def add_variants(
    data: dict[str, Any],
    variants: Mapping[str, Sequence[str]],
    attributes: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The plain-data form with labels appended to existing components (``data`` is updated).

    Args:
        data: a space's plain-data form.
        variants: ``{component: [new labels]}``.
        attributes: attributes of the new variants, ``{component: {label: {name: value}}}``.

    Returns:
        ``data``, with the new labels and attributes merged in.

    Raises:
        ValueError: for an empty mapping, an unknown component, a non-list of labels, a
            label that already exists, or attributes that are not a mapping.
    """
    components = data["components"]
    if not isinstance(variants, Mapping) or not variants:
        raise ValueError("with_variants needs a mapping {component: [new variant labels]}")
    for comp, labels in variants.items():
        if comp not in components:
            raise ValueError(
                f"with_variants: unknown component {comp!r}; valid: {list(components)}"
            )
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise ValueError(
                f"with_variants: component {comp!r} needs a list of labels, got {labels!r}"
            )
        for label in labels:
            if str(label) in components[comp]:
                raise ValueError(f"with_variants: component {comp!r} already has variant {label!r}")
        components[comp] = components[comp] + [str(v) for v in labels]
    for comp, table in (attributes or {}).items():
        if not isinstance(table, Mapping):
            raise ValueError(f"attributes of component {comp!r} must be a mapping")
        merged = data.setdefault("attributes", {}).setdefault(comp, {})
        merged.update({str(k): v for k, v in table.items()})
    return data


def retire_variants(data: dict[str, Any], variants: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The plain-data form with more variants retired (``data`` is updated).

    Unknown components or labels are left for the constructor to refuse, with its message.

    Raises:
        ValueError: for an empty mapping or a non-list of labels.
    """
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
    return data


def retired_table(
    components: tuple[str, ...],
    variants: tuple[tuple[str, ...], ...],
    retired: tuple[tuple[int, int], ...],
) -> dict[str, list[str]]:
    """The plain-data form ``{component: [labels]}`` of retired ``(k, code)`` pairs."""
    out: dict[str, list[str]] = {}
    for k, v in retired:
        out.setdefault(components[k], []).append(variants[k][v])
    return out


def translate_codes(target, source, codes: np.ndarray) -> np.ndarray:
    """Translate an ``(N, K)`` code array of space ``source`` into space ``target``'s codes.

    Components are matched by name and variants by label.

    Args:
        target: the :class:`LayoutSpace` whose codes are wanted.
        source: the :class:`LayoutSpace` the codes belong to.
        codes: ``(N, K_source)`` codes.

    Returns:
        ``(N, K_target)`` int32 codes.

    Raises:
        ValueError: when a component of ``target`` or a used variant of ``source`` is not in
            the other space.
    """
    codes = np.asarray(codes, dtype=np.int64).reshape(-1, source.num_components)
    out = np.empty((codes.shape[0], target.num_components), dtype=np.int32)
    lookup = target.label_codes
    for k, comp in enumerate(target.components):
        if comp not in source.components:
            raise ValueError(
                f"component {comp!r} is not in the other space {list(source.components)}"
            )
        j = source.components.index(comp)
        table = np.full(source.cardinalities[j], -1, dtype=np.int64)
        for v, label in enumerate(source.variants[j]):
            table[v] = lookup[k].get(label, -1)
        mapped = table[codes[:, j]] if codes.size else np.zeros(0, np.int64)
        if np.any(mapped < 0):
            bad = source.variants[j][int(codes[np.flatnonzero(mapped < 0)[0], j])]
            raise ValueError(
                f"variant {bad!r} of component {comp!r} is not in this space; "
                f"valid variants: {list(target.variants[k])}"
            )
        out[:, k] = mapped
    return out
