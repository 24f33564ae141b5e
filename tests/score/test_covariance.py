"""The closed form's variance from covariance tables (issue 23): exact, and chosen by cost.

Oracles: ``sum_j logits(factor_j, x)^2`` enumerated over every layout of tiny spaces in
float64, and the r factor rows of the same fit scored by the same pass
(``GridOptions(closed_form="factor")``): the two paths add the same products in a
different order, so their figures agree to float64 rounding, far inside float32's.
"""

from __future__ import annotations

import itertools
import math

import jax
import numpy as np
import pytest
from conftest import numpy_eta, simulate_observations

import layoutopt as lo
from layoutopt.model.core import Params, pair_list
from layoutopt.score.covariance import (
    TABLES_MAX_SETS,
    closed_form,
    covariance_tables,
    prefer_tables,
    quadratic_form,
    table_bytes,
    table_sets,
)
from layoutopt.score.grid import GridOptions
from layoutopt.score.scoring import score_grid, score_layouts

CARDS = [(3,), (3, 4), (2, 3, 4), (2, 3, 2, 3), (2, 3, 2, 3, 2), (3, 2, 2, 3, 2, 2)]


def random_factor(card, r, pairs, seed):
    rng = np.random.default_rng(seed)
    return Params(
        rng.normal(size=r),
        tuple(rng.normal(size=(r, n)) for n in card),
        tuple(rng.normal(size=(r, card[a], card[b])) for a, b in pair_list(len(card)))
        if pairs
        else (),
    )


@pytest.mark.parametrize("pairs", [True, False], ids=["pairs", "additive"])
@pytest.mark.parametrize("card", CARDS, ids=[str(len(c)) for c in CARDS])
def test_tables_equal_the_sum_of_squared_factor_rows(card, pairs):
    factor = random_factor(card, r=7, pairs=pairs, seed=len(card))
    tables = covariance_tables(factor, card)
    codes = np.array(list(itertools.product(*[range(n) for n in card])), np.int32)
    want = np.sum(numpy_eta(factor, codes) ** 2, axis=0)
    with jax.enable_x64(True):
        got = np.asarray(quadratic_form(tables.components, tables.tables, codes))
    # float64 sums of ~(1 + K + K(K-1)/2)^2 products of O(1) terms, r = 7: ~1e-15 relative
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    size = min(len(card), 4 if pairs and len(card) > 1 else 2)
    assert tables.components == tuple(itertools.combinations(range(len(card)), size))
    assert 8 * sum(t.size for t in tables.tables) == table_bytes(card, bool(factor.pair))


@pytest.mark.parametrize("card", [(10, 8, 5, 4, 10, 10), (80, 80, 80), (2,) * 9, (7, 3)])
def test_table_bytes_is_the_sum_over_the_sets(card):
    for pairs in (True, False):
        want = 8 * sum(math.prod(card[k] for k in s) for s in table_sets(len(card), pairs))
        assert table_bytes(card, pairs) == want


def test_the_cheaper_path_is_chosen():
    card = (10, 8, 5, 4, 10, 10)  # 15 four-component sets
    assert not prefer_tables(card, True, rank=7)  # 15 look-ups against 7 rows
    assert prefer_tables(card, True, rank=8)
    # additive: 15 two-component sets too
    assert prefer_tables(card, False, rank=8) and not prefer_tables(card, False, rank=7)
    # tables as large as the space itself, past the byte cap
    assert not prefer_tables((400, 400, 400), True, rank=10**4)
    # more sets than one kernel may unroll
    assert math.comb(15, 4) > TABLES_MAX_SETS
    assert not prefer_tables((2,) * 15, True, rank=10**5)


def _fit(space, n_tested, seed=0, segments=False):
    rng = np.random.default_rng(seed)
    truth = Params(
        np.float64(-3.0),
        tuple(rng.normal(0, 0.3, n) for n in space.cardinalities),
        tuple(
            rng.normal(0, 0.1, (space.cardinalities[k], space.cardinalities[j]))
            for k, j in pair_list(space.num_components)
        ),
    )
    design = lo.initial_design(space, seed=seed, size=n_tested)
    codes = space.codes(design["index"].to_numpy())
    if not segments:
        obs = simulate_observations(space, truth, codes, 4000, seed=seed + 1)
    else:  # every layout in both segments, the second 0.3 logits above the first
        segs = np.repeat([0, 1], len(codes))
        codes = np.concatenate([codes, codes])
        ctr = 1.0 / (1.0 + np.exp(-(numpy_eta(truth, codes)[0] + 0.3 * segs)))
        imps = np.full(len(codes), 4000)
        clicks = rng.binomial(imps, ctr)
        obs = lo.Observations.from_codes(space, codes, imps, clicks, segments=segs)
    return lo.fit(space, obs, method="laplace", seed=seed, num_samples=64)


SPACES = {
    # 6 components: 15 tables over prefix and leaf components alike, a forbidden rule
    "six": lo.LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate((4, 3, 5, 2, 3, 4))},
        forbidden=[{"c0": "v1", "c4": "v2"}],
    ),
    # a distinct group: three slots of 7 items
    "slots": lo.LayoutSpace(
        {s: [f"i{j}" for j in range(7)] for s in ("s1", "s2", "s3")}, distinct=[("s1", "s2", "s3")]
    ),
    "segments": lo.LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate((3, 4, 2, 3, 2))},
        segments={"member": ["prime", "not"]},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SPACES))
def test_tables_and_factor_rows_give_the_same_scores(kind):
    space = SPACES[kind]
    post = _fit(space, n_tested=60, segments=kind == "segments")
    segment = {"member": "not"} if kind == "segments" else None
    factor = score_grid(post, segment=segment, grid_options=GridOptions(closed_form="factor"))
    tables = score_grid(post, segment=segment, grid_options=GridOptions(closed_form="tables"))
    auto = score_grid(post, segment=segment)
    np.testing.assert_array_equal(tables.codes, factor.codes)
    for name in ("mean", "lower", "upper"):
        # float64 kernels, float32 results: the paths differ by float64 rounding (~1e-15
        # of x'Dx), i.e. at most one float32 ulp after the cast
        np.testing.assert_allclose(getattr(tables, name), getattr(factor, name), rtol=2.4e-7)
        np.testing.assert_array_equal(getattr(auto, name), getattr(tables, name))
    np.testing.assert_array_equal(tables.p_best, factor.p_best)
    assert post.gaussian.rank >= 60  # auto took the tables: fewer sets than 2r
    # a layout scored on its own gets the grid's figures, bit for bit
    full = tables.to_pandas()
    rows = score_layouts(post, None, full[list(space.components)], segment=segment)
    for name in ("index", "mean", "lower", "upper"):
        np.testing.assert_array_equal(rows[name].to_numpy(), full[name].to_numpy())


def test_forced_tables_past_the_caps_are_refused():
    space = lo.LayoutSpace({f"c{k}": ["a", "b"] for k in range(15)})
    post = _fit(lo.LayoutSpace({f"c{k}": ["a", "b"] for k in range(5)}), n_tested=12)
    with pytest.raises(ValueError, match="closed_form='nope' is not valid"):
        score_grid(post, grid_options=GridOptions(closed_form="nope"))
    wide = post.gaussian._replace(
        factor=random_factor(space.cardinalities, 3, True, seed=1),
        mode=random_factor(space.cardinalities, 1, True, seed=2),
        var=random_factor(space.cardinalities, 1, True, seed=3),
    )
    with pytest.raises(ValueError, match=r"1,365 tables .* above the 1,000 tables"):
        closed_form(wide, space.cardinalities, "tables")
    rows, components, tables = closed_form(wide, space.cardinalities, "auto")
    assert components == () and tables == () and rows.intercept.shape == (5,)
