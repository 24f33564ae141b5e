"""Tests of layoutopt.decide.design: coverage checked by brute force over every variant pair."""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from layoutopt.decide.design import UncoverablePairsWarning, initial_design
from layoutopt.model.space import LayoutSpace


def make_space(card, forbidden=None):
    comps = {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)}
    return LayoutSpace(comps, forbidden=forbidden)


def design_codes(space, df):
    return np.stack([df[c].cat.codes.to_numpy() for c in space.components], axis=1).astype(np.int32)


def coverable_pairs(space):
    """Every coverable variant pair, by enumerating the (tiny) space: the exact oracle."""
    codes = np.concatenate([c for _, c in space.iter_chunks()], axis=0)
    K = space.num_components
    return {
        (j, m, a, b) for j, m in itertools.combinations(range(K), 2) for a, b in codes[:, [j, m]]
    }


def covered_pairs(codes):
    K = codes.shape[1]
    return {
        (j, m, a, b) for j, m in itertools.combinations(range(K), 2) for a, b in codes[:, [j, m]]
    }


def check_valid(space, df):
    codes = design_codes(space, df)
    assert len({tuple(r) for r in codes}) == len(codes), "rows must be distinct"
    assert space.allowed_mask(codes).all(), "rows must be allowed"
    np.testing.assert_array_equal(df["index"].to_numpy(), space.indices(codes))
    assert list(df.columns) == ["index", *space.components]
    return codes


SPACES = [
    # (cardinalities, forbidden rules, largest size accepted)
    ((2, 2, 2), None, 4),
    ((3, 3, 3, 3), None, 9),
    ((8, 8, 8), None, 72),
    ((6, 5, 6, 2, 3), None, 36),
    ((6, 5, 6, 2, 3), [{"c0": "v1", "c2": "v2", "c4": "v0"}], 38),
    ((5, 5, 5, 5, 5), None, 34),
    ((4,) * 6, [{"c0": "v0", "c1": "v0", "c2": "v0"}, {"c3": "v1", "c5": "v2"}], 30),
    ((3, 2, 4), [{"c0": "v0"}], 12),
    ((7,), None, 7),
]


@pytest.mark.parametrize("card, forbidden, max_rows", SPACES)
def test_pairwise_covers_every_coverable_pair(card, forbidden, max_rows):
    space = make_space(card, forbidden)
    all_pairs = {
        (j, m, a, b)
        for j, m in itertools.combinations(range(len(card)), 2)
        for a in range(space.cardinalities[j])
        for b in range(space.cardinalities[m])
    }
    uncoverable = all_pairs - coverable_pairs(space)
    # Only pairs that no single rule names by itself are a surprise worth a warning.
    expect_warning = any(
        not any(set(rule) <= {(j, a), (m, b)} for rule in space.forbidden)
        for j, m, a, b in uncoverable
    )
    if expect_warning:
        with pytest.warns(UncoverablePairsWarning):
            df = initial_design(space, seed=0)
    else:
        df = initial_design(space, seed=0)
    codes = check_valid(space, df)
    assert covered_pairs(codes) == coverable_pairs(space)
    assert df.attrs["covering_size"] == len(df)
    assert df.attrs["lower_bound"] <= len(df) <= max_rows
    if len(card) == 1:  # no pairs: every allowed variant once
        assert len(df) == card[0]


def test_pairwise_sizes_at_bound_for_simple_spaces():
    # 2^3 and 3^4 admit orthogonal arrays of size n^2; the greedy must find them.
    assert len(initial_design(make_space((2, 2, 2)))) == 4
    assert len(initial_design(make_space((3, 3, 3, 3)))) == 9
    # mixed levels dominated by the two largest components: the bound 6 * 6 is reached
    assert len(initial_design(make_space((6, 5, 6, 2, 3)))) == 36


def test_uncoverable_pair_is_reported():
    # A rule naming exactly the pair: intended, so listed without a warning.
    space = make_space((3, 3, 2), forbidden=[{"c0": "v1", "c2": "v0"}])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncoverablePairsWarning)
        df = initial_design(space, seed=0)
    assert df.attrs["uncoverable_pairs"] == [{"c0": "v1", "c2": "v0"}]
    codes = check_valid(space, df)
    assert covered_pairs(codes) == coverable_pairs(space)


def test_variant_forbidden_outright_reports_all_its_pairs():
    space = make_space((3, 2, 2), forbidden=[{"c0": "v2"}])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncoverablePairsWarning)
        df = initial_design(space, seed=0)
    assert {tuple(sorted(p.items())) for p in df.attrs["uncoverable_pairs"]} == {
        (("c0", "v2"), ("c1", "v0")),
        (("c0", "v2"), ("c1", "v1")),
        (("c0", "v2"), ("c2", "v0")),
        (("c0", "v2"), ("c2", "v1")),
    }


def test_pairwise_is_reproducible_and_seeded():
    space = make_space((5, 4, 4, 3, 3, 2))
    a = initial_design(space, seed=3)
    b = initial_design(space, seed=3)
    assert a.equals(b)


def test_pairwise_top_up_and_minimum_size():
    space = make_space((4, 4, 3))
    base = initial_design(space, seed=0)
    n = len(base)
    more = initial_design(space, seed=0, size=n + 10)
    codes = check_valid(space, more)
    assert len(more) == n + 10 and more.attrs["covering_size"] == n
    assert set(base["index"]) <= set(more["index"])
    assert covered_pairs(codes) == coverable_pairs(space)
    with pytest.raises(ValueError, match=f"smallest pairwise design found for this space \\({n}"):
        initial_design(space, seed=0, size=n - 1)
    # top-up up to the whole space (enumerated pool path)
    assert len(initial_design(space, seed=0, size=space.size)) == space.size


def test_pairwise_covers_a_large_space():
    # 10 components x 10 variants: 10^10 layouts, 4,500 pairs (its speed is benchmarked,
    # not tested: no wall-clock assertions in the test suite).
    space = make_space((10,) * 10)
    df = initial_design(space, seed=0)
    codes = design_codes(space, df)
    assert len(covered_pairs(codes)) == 45 * 100
    assert len(df) <= 170


def test_pairwise_beyond_int64_indices():
    space = make_space((10,) * 22)  # 10^22 layouts: indices are Python ints
    df = initial_design(space, seed=0, size=None)
    codes = design_codes(space, df)
    assert len(covered_pairs(codes)) == 231 * 100
    assert isinstance(df["index"].iloc[0], int)


@pytest.mark.parametrize(
    "card, forbidden, size",
    [
        ((3, 3), None, 5),
        ((3, 3), [{"c0": "v0"}], 6),  # every allowed layout, via the enumerated pool
        ((10,) * 12, [{"c0": "v0", "c1": "v1"}], 50),  # 10^12 layouts, rejection sampling
    ],
)
def test_random_design(card, forbidden, size):
    space = make_space(card, forbidden)
    df = initial_design(space, seed=1, size=size, kind="random")
    assert len(df) == size
    if space.size < 2**63:
        check_valid(space, df)
    assert df.equals(initial_design(space, seed=1, size=size, kind="random"))
    if size < space.num_allowed:
        assert not df.equals(initial_design(space, seed=2, size=size, kind="random"))


def test_full_design():
    space = make_space((3, 2, 2), forbidden=[{"c0": "v0", "c1": "v1"}])
    df = initial_design(space, kind="full")
    assert len(df) == space.num_allowed == 10
    check_valid(space, df)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="nope"), r"unknown design kind 'nope'; valid kinds: \['pairwise'"),
        (dict(kind="random"), "needs size"),
        (dict(kind="random", size=13), "exceeds the 12 allowed layouts"),
        (dict(kind="random", size=0), "positive integer"),
        (dict(size=2.5), "positive integer"),
        (dict(kind="full", max_full=10), r"12 allowed layouts \(space size 12\).*pairwise"),
        (dict(kind="full", size=3), "takes no size"),
    ],
)
def test_design_errors(kwargs, match):
    space = make_space((3, 2, 2))
    with pytest.raises(ValueError, match=match):
        initial_design(space, **kwargs)


def test_pair_made_impossible_by_two_rules_warns():
    # c1=v0 forces c2 away from v0 and c2=v0 would need c1=v0: no single rule names the pair
    # (c0=v0, c2=v0), but every layout holding it is forbidden through c1.
    space = make_space((2, 1, 2), forbidden=[{"c0": "v0", "c1": "v0", "c2": "v0"}])
    with pytest.warns(UncoverablePairsWarning, match="1 variant pair"):
        df = initial_design(space, seed=0)
    assert df.attrs["uncoverable_pairs"] == [{"c0": "v0", "c2": "v0"}]


ITEMS = [f"i{j}" for j in range(7)]
DISTINCT_SPACES = [
    LayoutSpace({"s1": ITEMS, "s2": ITEMS, "s3": ITEMS}, distinct=[("s1", "s2", "s3")]),
    LayoutSpace(
        {"s1": ITEMS[:4], "x": ["a", "b", "c"], "s2": ITEMS[:4], "s3": ITEMS[:4]},
        distinct=[("s1", "s2", "s3")],
        forbidden=[{"s1": "i0", "x": "a"}, {"s2": "i1", "x": "b"}, {"s3": "i2", "x": "b"}],
        retired={"s3": ["i3"]},
    ),
    LayoutSpace({"s1": ITEMS[:3], "s2": ITEMS[:3], "s3": ITEMS[:3]}, distinct=[("s1", "s2", "s3")]),
]


@pytest.mark.parametrize("space", DISTINCT_SPACES, ids=["slots", "slots+rules", "tight"])
@pytest.mark.parametrize("kind", ["pairwise", "random", "top-up"])
def test_designs_of_slots_never_repeat_an_item(space, kind):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one item in two slots is intended: no warning
        if kind == "pairwise":
            df = initial_design(space, seed=0)
        elif kind == "random":
            df = initial_design(space, seed=0, kind="random", size=min(20, space.num_allowed))
        else:
            first = initial_design(space, seed=0).iloc[:2]
            df = pd.concat([first, initial_design(space, seed=1, cover=first)])
    codes = design_codes(space, df)
    assert space.allowed_mask(codes).all()
    assert len({tuple(r) for r in codes}) == len(codes)
    if kind != "random":
        assert covered_pairs(codes) >= coverable_pairs(space)
