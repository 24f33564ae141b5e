"""Rules of a layout space: parsing, exact counting of allowed layouts, masks.

Two kinds of rule exclude layouts, and everything that excludes layouts reads both:

* a *forbidden* rule is a sorted tuple of ``(component index, variant code)`` pairs; a layout
  is forbidden when it matches every pair of one rule. A retired variant is kept as a
  one-entry rule, so everything that excludes forbidden layouts also excludes retired
  variants; the functions here that take ``retired`` tell the two kinds apart where data may
  still hold retired ones.
* a *distinct* group is a sorted tuple of component indices whose components share one list
  of variant labels (slots drawing from one pool of items); a layout is excluded when two
  components of one group hold the same code. One group is one rule, whatever the number of
  items (not one forbidden rule per repeated pair).

For traced code both kinds are dense arrays (:class:`RuleArrays`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "Group",
    "Rule",
    "RuleArrays",
    "allowed_mask",
    "count_allowed",
    "count_forbidden",
    "forbidden_arrays",
    "matched_rule",
    "parse_distinct",
    "parse_retired",
    "repeated_pair",
    "parse_rules",
    "select_rules",
    "user_rules",
]

Rule = tuple[tuple[int, int], ...]
Group = tuple[int, ...]


class RuleArrays(NamedTuple):
    """Both kinds of rule as dense arrays for traced code.

    Attributes:
        wanted: ``(R, K)`` int32; ``wanted[r, k]`` is the code forbidden rule ``r`` names
            for component ``k``.
        active: ``(R, K)`` bool; ``active[r, k]`` says rule ``r`` constrains component ``k``.
            A layout ``x`` is forbidden iff for some ``r`` every active ``k`` has
            ``x[k] == wanted[r, k]``.
        pairs: ``(Q, 2)`` int32, the pairs ``(k, l)``, ``k < l``, of components in one
            distinct group: a layout with ``x[k] == x[l]`` for some pair is excluded (a
            group of m components gives its m(m-1)/2 pairs of slots, never pairs of items).
    """

    wanted: np.ndarray
    active: np.ndarray
    pairs: np.ndarray


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
            label = "" if label is None else str(label)  # None: an optional one's absence
            if label not in lookup[k]:
                raise ValueError(
                    f"forbidden rule #{r} names unknown variant {label!r} of component "
                    f"{comp!r}; valid variants: {list(variants[k])}"
                )
            entries.append((k, lookup[k][label]))
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


def parse_distinct(
    distinct: Sequence[Sequence[str]] | None,
    components: tuple[str, ...],
    variants: tuple[tuple[str, ...], ...],
) -> tuple[Group, ...]:
    """Validate ``distinct=[("slot1", "slot2", ...), ...]`` into groups of component indices.

    Args:
        distinct: groups of component names, or None.
        components: the component names, in order.
        variants: per component, the variant labels.

    Returns:
        One sorted tuple of component indices per group, in the order given.

    Raises:
        ValueError: for a group that is not a list of at least two component names, an
            unknown component, a component named twice (in one group or in two), or
            components of one group whose variant lists differ (they must list the same
            labels in the same order: one pool of items).
    """
    if distinct is None:
        return ()
    if isinstance(distinct, str) or not isinstance(distinct, Sequence):
        raise ValueError(
            f"distinct must be a list of groups of component names, e.g. "
            f"[('slot1', 'slot2', 'slot3')], got {distinct!r}"
        )
    groups: list[Group] = []
    used: dict[str, int] = {}
    for g, group in enumerate(distinct):
        if isinstance(group, str) or not isinstance(group, Sequence) or len(group) < 2:
            raise ValueError(
                f"distinct group #{g} must list at least two component names, got {group!r}"
            )
        for comp in group:
            if comp not in components:
                raise ValueError(
                    f"distinct group #{g} names unknown component {comp!r}; "
                    f"valid components: {list(components)}"
                )
            if comp in used:
                raise ValueError(
                    f"distinct group #{g} names component {comp!r}, already in distinct "
                    f"group #{used[comp]}; a component belongs to one group at most"
                )
            used[comp] = g
        first = components.index(group[0])
        for comp in group[1:]:
            k = components.index(comp)
            if variants[k] != variants[first]:
                raise ValueError(
                    f"distinct group #{g}: component {comp!r} has variants {list(variants[k])}"
                    f" but {group[0]!r} has {list(variants[first])}; the components of a "
                    "distinct group draw from one pool: give them the same labels in the "
                    "same order"
                )
        groups.append(tuple(sorted(components.index(c) for c in group)))
    return tuple(groups)


def count_allowed(
    rules: Sequence[Rule], cardinalities: Sequence[int], distinct: Sequence[Group] = ()
) -> int:
    """Exact number of allowed layouts: no forbidden rule matched, no distinct group repeated.

    Layouts that respect the distinct groups are counted in closed form (per group of m
    components over n labels, with f of them fixed to f different codes, the free ones take
    ``(n - f)! / (n - m)!`` injective values); the forbidden rules are subtracted by
    inclusion-exclusion over that same count. Exponential in the number of forbidden rules
    in the worst case; intersections that fix one component to two codes, or two components
    of a group to one code, are pruned early, so disjoint rules cost little.

    Args:
        rules: the forbidden rules.
        cardinalities: number of variants per component.
        distinct: the distinct groups.

    Returns:
        The number of allowed layouts, a Python int.
    """
    card, groups = tuple(cardinalities), tuple(distinct)
    return _count_free(card, groups, {}) - _count_union(tuple(rules), card, groups, 0, {})


def count_forbidden(rules: Sequence[Rule], cardinalities: Sequence[int]) -> int:
    """Exact number of layouts matched by at least one rule (inclusion-exclusion).

    Args:
        rules: the rules.
        cardinalities: number of variants per component.

    Returns:
        The size of the union of the rules' layout sets, a Python int.
    """
    return _count_union(tuple(rules), tuple(cardinalities), (), 0, {})


def _count_free(card: tuple, groups: tuple, fixed: dict[int, int]) -> int:
    """Layouts that agree with ``fixed`` and repeat no code within a distinct group."""
    grouped = {k for g in groups for k in g}
    total = math.prod(n for k, n in enumerate(card) if k not in fixed and k not in grouped)
    for g in groups:
        values = [fixed[k] for k in g if k in fixed]
        if len(set(values)) < len(values):
            return 0
        n, f = card[g[0]], len(values)
        total *= math.perm(n - f, len(g) - f) if n >= len(g) else 0
    return total


def _count_union(rules: tuple, card: tuple, groups: tuple, start: int, fixed: dict) -> int:
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
        free = _count_free(card, groups, merged)
        if free:  # an empty intersection stays empty with more rules
            total += free - _count_union(rules, card, groups, r + 1, merged)
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


def repeated_pair(codes: Sequence[int], distinct: Sequence[Group]) -> Rule | None:
    """The first two components of one distinct group holding one code, as a rule, or None."""
    for g in distinct:
        for i, k in enumerate(g):
            for l in g[i + 1 :]:
                if codes[k] == codes[l]:
                    return ((k, int(codes[k])), (l, int(codes[l])))
    return None


def matched_rule(codes: Sequence[int], rules: Sequence[Rule]) -> Rule | None:
    """The first rule one code tuple matches, or None."""
    for rule in rules:
        if all(codes[k] == v for k, v in rule):
            return rule
    return None


def allowed_mask(
    codes: np.ndarray, rules: Sequence[Rule], distinct: Sequence[Group] = ()
) -> np.ndarray:
    """Boolean mask over the rows of an ``(..., K)`` code array: True where no rule matches
    and no distinct group repeats a code."""
    codes = np.asarray(codes)
    mask = np.ones(codes.shape[:-1], dtype=bool)
    for rule in rules:
        hit = np.ones(codes.shape[:-1], dtype=bool)
        for k, v in rule:
            hit &= codes[..., k] == v
        mask &= ~hit
    for g in distinct:
        for i, k in enumerate(g):
            for l in g[i + 1 :]:
                mask &= codes[..., k] != codes[..., l]
    return mask


def forbidden_arrays(
    rules: Sequence[Rule], num_components: int, distinct: Sequence[Group] = ()
) -> RuleArrays:
    """Both kinds of rule as dense arrays for traced code (:class:`RuleArrays`)."""
    wanted = np.zeros((len(rules), num_components), dtype=np.int32)
    active = np.zeros((len(rules), num_components), dtype=bool)
    for r, rule in enumerate(rules):
        for k, v in rule:
            wanted[r, k] = v
            active[r, k] = True
    pairs = [(k, l) for g in distinct for i, k in enumerate(g) for l in g[i + 1 :]]
    return RuleArrays(wanted, active, np.asarray(pairs, dtype=np.int32).reshape(-1, 2))
