"""Forbidden rules of a layout space: parsing, exact counting of allowed layouts, masks.

A rule is a sorted tuple of ``(component index, variant code)`` pairs; a layout is forbidden
when it matches every pair of one rule. A retired variant is kept as a one-entry rule, so
everything that excludes forbidden layouts also excludes retired variants; the functions
here that take ``retired`` tell the two kinds apart where data may still hold retired ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "Rule",
    "allowed_mask",
    "count_forbidden",
    "forbidden_arrays",
    "matched_rule",
    "parse_retired",
    "parse_rules",
    "select_rules",
    "user_rules",
]

Rule = tuple[tuple[int, int], ...]


def parse_rules(
    forbidden: Sequence[Mapping[str, str]] | None,
    components: tuple[str, ...],
    variants: tuple[tuple[str, ...], ...],
    lookup: tuple[Mapping[str, int], ...],
) -> list[Rule]:
    """Validate the ``forbidden=`` partial layouts into rules of (component, code) pairs.

    Args:
        forbidden: partial layouts ``{component: variant label}``, or None.
        components: the component names, in order.
        variants: per component, the variant labels.
        lookup: per component, ``{variant label: code}``.

    Returns:
        One sorted rule per partial layout, in the order given.

    Raises:
        ValueError: for an empty or non-mapping rule, or one naming an unknown component or
            variant.
    """
    rules: list[Rule] = []
    for r, rule in enumerate(forbidden or ()):
        if not isinstance(rule, Mapping) or len(rule) == 0:
            raise ValueError(
                f"forbidden rule #{r} must be a non-empty mapping "
                f"{{component: variant}}, got {rule!r}"
            )
        entries = []
        for comp, label in rule.items():
            if comp not in components:
                raise ValueError(
                    f"forbidden rule #{r} names unknown component {comp!r}; "
                    f"valid components: {list(components)}"
                )
            k = components.index(comp)
            if str(label) not in lookup[k]:
                raise ValueError(
                    f"forbidden rule #{r} names unknown variant {label!r} of component "
                    f"{comp!r}; valid variants: {list(variants[k])}"
                )
            entries.append((k, lookup[k][str(label)]))
        rules.append(tuple(sorted(entries)))
    return rules


def parse_retired(
    retired: Mapping[str, Sequence[str]] | None,
    components: tuple[str, ...],
    variants: tuple[tuple[str, ...], ...],
    lookup: tuple[Mapping[str, int], ...],
) -> tuple[tuple[int, int], ...]:
    """Validate ``{component: [labels]}`` of retired variants into sorted (k, code) pairs.

    Raises:
        ValueError: for an unknown component or variant, a non-list of labels, or when every
            variant of a component would be retired.
    """
    if not retired:
        return ()
    if not isinstance(retired, Mapping):
        raise ValueError(f"retired must be a mapping {{component: [labels]}}, got {retired!r}")
    pairs = set()
    for comp, labels in retired.items():
        if comp not in components:
            raise ValueError(f"retired names unknown component {comp!r}; valid: {list(components)}")
        k = components.index(comp)
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise ValueError(f"retired variants of {comp!r} must be a list, got {labels!r}")
        for label in labels:
            if str(label) not in lookup[k]:
                raise ValueError(
                    f"retired names unknown variant {label!r} of component {comp!r}; "
                    f"valid variants: {list(variants[k])}"
                )
            pairs.add((k, lookup[k][str(label)]))
        if sum(1 for kk, _ in pairs if kk == k) >= len(variants[k]):
            raise ValueError(
                f"cannot retire every variant of component {comp!r}; add a new one first"
            )
    return tuple(sorted(pairs))


def count_forbidden(rules: Sequence[Rule], cardinalities: Sequence[int]) -> int:
    """Exact number of layouts matched by at least one rule (inclusion-exclusion).

    Exponential in the number of rules in the worst case; intersections that fix one
    component to two codes are pruned early, so disjoint rules cost little.

    Args:
        rules: the rules.
        cardinalities: number of variants per component.

    Returns:
        The size of the union of the rules' layout sets, a Python int.
    """
    return _count_union(tuple(rules), tuple(cardinalities), 0, {})


def _count_union(rules: tuple, card: tuple, start: int, fixed: dict[int, int]) -> int:
    total = 0
    for r in range(start, len(rules)):
        merged = dict(fixed)
        ok = True
        for k, v in rules[r]:
            if merged.get(k, v) != v:
                ok = False
                break
            merged[k] = v
        if not ok:
            continue
        free = math.prod(n for k, n in enumerate(card) if k not in merged)
        total += free - _count_union(rules, card, r + 1, merged)
    return total


def user_rules(rules: Sequence[Rule], retired: Sequence[tuple[int, int]]) -> list[Rule]:
    """The rules a user wrote: all but the one-entry rules of retired variants."""
    retired = set(retired)
    return [r for r in rules if not (len(r) == 1 and r[0] in retired)]


def select_rules(
    rules: tuple[Rule, ...], retired: Sequence[tuple[int, int]], include_retired: bool
) -> tuple[Rule, ...]:
    """``rules``, or only the user's rules when ``include_retired`` is False."""
    if include_retired or not retired:
        return rules
    user = set(user_rules(rules, retired))
    return tuple(r for r in rules if r in user)


def matched_rule(codes: Sequence[int], rules: Sequence[Rule]) -> Rule | None:
    """The first rule one code tuple matches, or None."""
    for rule in rules:
        if all(codes[k] == v for k, v in rule):
            return rule
    return None


def allowed_mask(codes: np.ndarray, rules: Sequence[Rule]) -> np.ndarray:
    """Boolean mask over the rows of an ``(..., K)`` code array: True where no rule matches."""
    codes = np.asarray(codes)
    mask = np.ones(codes.shape[:-1], dtype=bool)
    for rule in rules:
        hit = np.ones(codes.shape[:-1], dtype=bool)
        for k, v in rule:
            hit &= codes[..., k] == v
        mask &= ~hit
    return mask


def forbidden_arrays(rules: Sequence[Rule], num_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Rules as dense ``(R, K)`` arrays ``(wanted, active)`` for traced code.

    ``active[r, k]`` says rule ``r`` constrains component ``k`` and ``wanted[r, k]`` is the
    variant code it names.
    """
    wanted = np.zeros((len(rules), num_components), dtype=np.int32)
    active = np.zeros((len(rules), num_components), dtype=bool)
    for r, rule in enumerate(rules):
        for k, v in rule:
            wanted[r, k] = v
            active[r, k] = True
    return wanted, active
