"""One conformance table every policy passes, driven through simulate.run_campaign.

A new policy is one row of ``POLICIES``.
"""

from __future__ import annotations

import numpy as np
import pytest

from layoutopt.decide import policies
from layoutopt.decide.driver import split_batch
from layoutopt.decide.policies import Allocation
from layoutopt.model.space import LayoutSpace
from layoutopt.sim.simulate import SyntheticWorld, run_campaign

# 23 allowed layouts (one forbidden pair rule) with well-separated CTRs. One space and one
# set of shapes for every model policy, so the jitted fit and scoring compile once.
SPACE = LayoutSpace(
    {"headline": ["h0", "h1", "h2"], "image": ["i0", "i1"], "reviews": ["r0", "r1", "r2", "r3"]},
    forbidden=[{"headline": "h1", "image": "i0"}],
)
BATCH, BUDGET = 500, 6_000
MODEL = {"num_samples": 200}
POLICIES = {
    "thompson": lambda: policies.thompson(k=4, **MODEL),
    "top_two": lambda: policies.top_two(k=4, beta=0.5, **MODEL),
    "greedy": lambda: policies.greedy(k=4, **MODEL),
    "ucb": lambda: policies.ucb(k=4, quantile=0.9, **MODEL),
    "thompson/variance 0.5": lambda: policies.thompson(k=4, variance_scale=0.5, **MODEL),
    "additive/thompson": lambda: policies.thompson(k=4, pairwise=False, **MODEL),
    "thompson/random design, rounded": lambda: policies.thompson(
        k=4, initial="random", allocation="round", **MODEL
    ),
    "independent": lambda: policies.independent(draws_per_round=BATCH),
    "uniform": policies.uniform,
}


def _world():
    return SyntheticWorld.random(SPACE, seed=0, base_rate=0.1, main_scale=0.5, pair_scale=0.25)


_CACHE: dict = {}


def _play(name, seed=0, budget=BUDGET):
    """(result, served rounds) of one campaign, cached per (name, seed, budget)."""
    key = (name, seed, budget)
    if key not in _CACHE:
        served = []
        res = run_campaign(
            _world(),
            policy=POLICIES[name](),
            budget=budget,
            batch_size=BATCH,
            seed=seed,
            callback=lambda info, rec: served.append(info),
        )
        _CACHE[key] = (res, served)
    return _CACHE[key]


@pytest.mark.parametrize("name", POLICIES)
def test_spends_exactly_the_batch_on_allowed_layouts(name):
    res, served = _play(name)
    assert [int(info.impressions.sum()) for info in served] == [BATCH] * (BUDGET // BATCH)
    assert res.impressions.tolist() == list(range(BATCH, BUDGET + 1, BATCH))
    for info in served:
        assert SPACE.allowed_mask(info.codes).all()
        assert (info.impressions > 0).all()
        assert len(np.unique(SPACE.indices(info.codes))) == len(info.codes)
        assert ((0 <= info.clicks) & (info.clicks <= info.impressions)).all()
    assert SPACE.allowed_mask(SPACE.codes(res.pick_index)).all()


@pytest.mark.parametrize("name", POLICIES)
def test_same_key_same_campaign(name):
    """The same seed replays the campaign; a shorter budget replays its first rounds."""
    res, _ = _play(name)
    short, _ = _play(name, budget=3 * BATCH)
    for field in ("local_regret", "simple_regret", "pick_index", "num_tested", "clicks"):
        np.testing.assert_array_equal(getattr(short, field), getattr(res, field)[:3], field)
    other, _ = _play(name, seed=1, budget=3 * BATCH)
    assert not np.array_equal(other.clicks, short.clicks)


@pytest.mark.parametrize("name", [n for n in POLICIES if n != "uniform"])
def test_beats_uniform_on_an_easy_world(name):
    """Second-half local regret well below uniform's.

    Uniform's local regret is ctr* minus the mean CTR of the space every round (~0.16 here,
    up to the rounding of 500 impressions over 23 layouts); a learning policy concentrates
    on the few best of 23 well-separated layouts within 3,000 impressions. Observed: 0.00-0.03
    for every row, so half of uniform's regret is a safe bar.
    """
    res, _ = _play(name)
    uni, _ = _play("uniform")
    half = len(res.local_regret) // 2
    assert res.local_regret[half:].mean() < 0.5 * uni.local_regret.mean()


@pytest.mark.parametrize("name", POLICIES)
def test_info_reports_a_pick_with_its_summary(name):
    _, served = _play(name)
    last = served[-1]
    assert 0 <= last.pick < SPACE.size
    if name in ("uniform", "independent"):
        assert last.posterior is None and np.isnan(last.p_best)
        assert 0.0 <= last.mean <= 1.0  # the observed CTR of the pick
    else:
        assert last.posterior is not None
        assert last.lower <= last.mean <= last.upper and 0.0 <= last.p_best <= 1.0


@pytest.mark.parametrize(
    "weights, split, total, want",
    [
        ([0.5, 0.3, 0.2], "round", 10, [5, 3, 2]),
        ([1, 1, 1], "round", 10, [4, 3, 3]),  # remainder to the earlier rows
        ([2, 0, 0], "round", 7, [7, 0, 0]),
    ],
)
def test_split_batch_round(weights, split, total, want):
    alloc = Allocation(np.zeros((len(weights), 1), np.int32), np.asarray(weights, float), split)
    got = split_batch(alloc, total, np.random.default_rng(0))
    assert got.tolist() == want


def test_split_batch_multinomial_and_bad_input():
    alloc = Allocation(np.zeros((3, 1), np.int32), np.array([0.2, 0.0, 0.8]), "multinomial")
    got = split_batch(alloc, 1000, np.random.default_rng(0))
    assert got.sum() == 1000 and got[1] == 0
    with pytest.raises(ValueError, match="positive weight"):
        split_batch(alloc._replace(weights=np.zeros(3)), 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="split must be"):
        split_batch(alloc._replace(split="even"), 10, np.random.default_rng(0))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: policies.thompson(k=0), "k must be positive"),
        (lambda: policies.thompson(initial="latin"), "initial must be one of"),
        (lambda: policies.thompson(variance_scale=-1), "variance_scale must be a finite"),
        (lambda: policies.greedy(allocation="even"), "allocation must be one of"),
        (lambda: policies.independent(draws_per_round=0), "draws_per_round"),
    ],
)
def test_factories_validate(make, match):
    with pytest.raises(ValueError, match=match):
        make()
