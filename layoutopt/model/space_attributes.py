"""Variant attributes of a layout space: validation, the plain-data table, the coded design.

Attributes enter the model as ``m_k[v] = a_k(v) . beta_k + e_k[v]``: booleans are 0/1,
categories one-hot with the first variant's category as baseline, numbers standardised over
the component's variants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["attribute_columns", "attribute_kind", "attributes_table", "parse_attributes"]


def attribute_kind(value: Any) -> str | None:
    """``"bool"``, ``"category"`` or ``"number"`` for a valid attribute value, else None."""
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, str):
        return "category"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number" if math.isfinite(float(value)) else None
    return None


def parse_attributes(
    attributes: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
    components: tuple[str, ...],
    variants: tuple[tuple[str, ...], ...],
) -> tuple:
    """Validate the attribute tables into, per component, ``((name, values per variant),)``.

    Args:
        attributes: ``{component: {label: {name: value}}}``, or None.
        components: the component names, in order.
        variants: per component, the variant labels.

    Returns:
        One tuple per component (empty for a component without attributes) of
        ``(attribute name, value of each variant)`` pairs, values as plain Python values.

    Raises:
        ValueError: for an unknown component or variant, a variant without a value of an
            attribute, a value of an invalid type, or one attribute with two types.
    """
    empty = tuple(() for _ in components)
    if not attributes:
        return empty
    if not isinstance(attributes, Mapping):
        raise ValueError(
            f"attributes must be a mapping {{component: {{label: {{name: value}}}}}}, "
            f"got {attributes!r}"
        )
    out = list(empty)
    for comp, table in attributes.items():
        if comp not in components:
            raise ValueError(
                f"attributes name unknown component {comp!r}; valid: {list(components)}"
            )
        k = components.index(comp)
        _check_table(comp, table, variants[k])
        table = {str(lab): vals for lab, vals in table.items()}
        names: list[str] = []
        for vals in table.values():
            names += [str(n) for n in vals if str(n) not in names]
        out[k] = tuple((name, _column(comp, table, name, variants[k])) for name in names)
    return tuple(out)


def _check_table(comp: str, table: Any, labels: tuple[str, ...]) -> None:
    if not isinstance(table, Mapping):
        raise ValueError(f"attributes of component {comp!r} must map labels to tables")
    for label, values in table.items():
        if str(label) not in labels:
            raise ValueError(
                f"attributes of component {comp!r} name unknown variant {label!r}; "
                f"valid variants: {list(labels)}"
            )
        if not isinstance(values, Mapping):
            raise ValueError(
                f"attributes of {comp!r} variant {label!r} must be a table "
                f"{{name: value}}, got {values!r}"
            )


def _column(comp: str, table: Mapping, name: str, labels: tuple[str, ...]) -> tuple:
    """The values of attribute ``name`` for every variant of one component, checked."""
    kind = None
    values = []
    for label in labels:
        vals = {str(n): v for n, v in table.get(label, {}).items()}
        if name not in vals:
            raise ValueError(
                f"attributes of component {comp!r}: variant {label!r} has no value "
                f"for {name!r}; every variant of {comp!r} needs one"
            )
        value = vals[name]
        this = attribute_kind(value)
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
    return tuple(values)


def attribute_columns(columns) -> list[tuple[str, np.ndarray]]:
    """Coded design columns ``(name, (n_k,) float64)`` of one component's attributes.

    Args:
        columns: one component's ``((name, values per variant), ...)``.

    Returns:
        One column per boolean or number, one per non-baseline category level
        (``"name=level"``).
    """
    out = []
    for name, values in columns:
        kind = attribute_kind(values[0])
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


def attributes_table(
    components: tuple[str, ...], variants: tuple[tuple[str, ...], ...], attributes: tuple
) -> dict[str, dict[str, dict[str, Any]]]:
    """The plain-data form ``{component: {label: {name: value}}}`` of parsed attributes
    (components without attributes left out)."""
    return {
        comp: {
            label: {name: values[v] for name, values in attributes[k]}
            for v, label in enumerate(variants[k])
        }
        for k, comp in enumerate(components)
        if attributes[k]
    }
