"""The campaign driver on worlds with segments and in time: ledger, shares, maturing clicks.

Plain worlds are covered by the policy conformance table (tests/test_policies.py); here the
driver plays a :class:`SegmentWorld` and a :class:`TimeWorld`, and its :class:`Ledger` is
checked against hand-computed arrivals.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import layoutopt as lo
from layoutopt.decide import policies
from layoutopt.decide.driver import Ledger, Response, run
from layoutopt.model.delay import DELAY_EDGES
from layoutopt.sim.segments import SegmentWorld
from layoutopt.sim.simulate import SyntheticWorld, run_campaign
from layoutopt.sim.timeworld import TimeWorld, event_log
from layoutopt.util.seeds import seed_of

SEG_SPACE = lo.LayoutSpace(
    {"h": ["h0", "h1", "h2"], "i": ["i0", "i1"], "r": ["r0", "r1"]},
    segments={"member": ["prime", "other"]},
)
SHARES = (0.7, 0.3)
BATCH, BUDGET = 1000, 8000
MODEL = {"num_samples": 200}


def _segment_world():
    return SegmentWorld.random(
        SEG_SPACE, seed=9, shares=list(SHARES), base_rate=0.08, main_scale=0.4, segment_scale=0.6
    )


SEG_POLICIES = {
    "thompson": lambda: policies.thompson(k=3, **MODEL),
    "thompson/one for all": lambda: policies.thompson(k=3, per_segment=False, **MODEL),
    "uniform": policies.uniform,
    "independent": lambda: policies.independent(draws_per_round=BATCH),
}
_CACHE: dict = {}


def _play(name, budget=BUDGET, seed=0):
    key = (name, budget, seed)
    if key not in _CACHE:
        infos = []
        res = run_campaign(
            _segment_world(),
            policy=SEG_POLICIES[name](),
            budget=budget,
            batch_size=BATCH,
            seed=seed,
            callback=lambda info, rec: infos.append(info),
        )
        _CACHE[key] = (res, infos)
    return _CACHE[key]


# ------------------------------------------------------------------------- segment worlds
@pytest.mark.parametrize("name", SEG_POLICIES)
def test_segment_world_spends_the_batch_and_serves_each_segment_its_share(name):
    res, infos = _play(name)
    assert res.impressions.tolist() == list(range(BATCH, BUDGET + 1, BATCH))
    for r, info in enumerate(infos):
        assert int(info.impressions.sum()) == BATCH
        # exact oracle: the round's split key draws the segment totals first
        k_split = jax.random.split(jax.random.fold_in(jax.random.key(0), r), 3)[0]
        want = np.random.default_rng(seed_of(k_split)).multinomial(BATCH, SHARES)
        got = np.bincount(info.segments, info.impressions, minlength=2)
        np.testing.assert_array_equal(got, want)
        alloc = info.allocation
        for g in range(2):
            served = SEG_SPACE.indices(info.codes[info.segments == g])
            rows = alloc.codes if alloc.segments is None else alloc.codes[alloc.segments == g]
            assert np.isin(served, SEG_SPACE.indices(rows)).all()
    obs = infos[-1].observations
    assert obs.segments is not None and obs.impressions.sum() == BUDGET


@pytest.mark.parametrize("name", SEG_POLICIES)
def test_segment_campaign_replays_from_its_seed(name):
    res, _ = _play(name)
    short, _ = _play(name, budget=3 * BATCH)
    again = run_campaign(
        _segment_world(), policy=SEG_POLICIES[name](), budget=3 * BATCH, batch_size=BATCH, seed=0
    )
    for field in ("impressions", "clicks", "local_regret", "simple_regret", "pick_index"):
        np.testing.assert_array_equal(getattr(again, field), getattr(short, field))
        np.testing.assert_array_equal(getattr(short, field), getattr(res, field)[:3])


def test_per_segment_policy_picks_per_segment_and_beats_uniform():
    world = _segment_world()
    assert world.best(0).index != world.best(1).index, "segments must disagree for this test"
    per, infos = _play("thompson")
    uni, _ = _play("uniform")
    mix, mix_infos = _play("thompson/one for all")
    assert infos[-1].segment_picks.shape == (2,) and mix_infos[-1].segment_picks is None
    assert infos[-1].allocation.segments is not None and mix_infos[-1].allocation.segments is None
    # Uniform's local regret is the traffic-weighted mean gap to each segment's best (about
    # 0.17 here, the same every round); per-segment Thompson's falls to ~0.001 by round 4,
    # one proposal for the mix stays at the mix's own gap (~0.03). A round's local regret
    # has a sd of about 0.005 (1,000 impressions at CTRs ~0.2), so the margins are wide.
    assert per.local_regret[1:].mean() < 0.5 * uni.local_regret[1:].mean()
    assert per.local_regret[4:].mean() < 0.5 * mix.local_regret[4:].mean()
    # The per-segment picks reach every segment's own best, which one layout cannot.
    own = float(np.dot(SHARES, [world.best(g).ctr for g in range(2)]))
    assert per.pick_ctr[-1] == pytest.approx(own, abs=1e-9)
    assert mix.pick_ctr[-1] <= world.best(None).ctr + 1e-9 < own
    np.testing.assert_allclose(per.pick_ctr + per.simple_regret, own, rtol=1e-9)


def test_segment_campaign_compiles_once():
    """Rows padded to every (layout, segment): new rows after round 1 trigger no compilation."""
    from jax import monitoring

    compiles, per_round = [0], []

    def listener(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles[0] += 1

    monitoring.register_event_duration_secs_listener(listener)
    try:
        run_campaign(
            _segment_world(),
            policy=policies.thompson(k=3, **MODEL),
            budget=12 * BATCH,
            batch_size=BATCH,
            seed=1,
            callback=lambda info, rec: per_round.append((compiles[0], info.observations.num_rows)),
        )
    finally:
        monitoring.unregister_event_duration_listener(listener)
    counts, rows = zip(*per_round, strict=True)
    assert rows[-1] > rows[1], "the check is only meaningful if new rows get tested"
    assert counts[-1] == counts[1], f"compilations per round: {np.diff(counts).tolist()}"


def test_allocation_must_cover_every_segment():
    base = policies.uniform()

    def step(state, obs, key):
        state, alloc, info = base.step(state, obs, key)
        return state, alloc._replace(segments=np.zeros(len(alloc.codes), np.int32)), info

    bad = policies.Policy(base.init, step, "segment-0-only")
    with pytest.raises(ValueError, match="no layout for segment code 1"):
        run_campaign(_segment_world(), policy=bad, budget=BATCH, batch_size=BATCH, seed=0)
    with pytest.raises(ValueError, match="world must have space, shares"):
        run(base, SEG_SPACE, budget=BATCH, batch_size=BATCH, seed=0)


# ------------------------------------------------------------------------------ the ledger
def test_ledger_shows_clicks_when_they_arrive():
    space = lo.LayoutSpace({"a": ["a0", "a1"], "b": ["b0", "b1"]})
    ledger = Ledger(space, segmented=False, hours_per_round=2.0)
    codes = np.array([[0, 0], [1, 1]])
    # row 0: clicks 0.5 h and 3 h after serving; row 1: one click after 5 h
    seen = ledger.add(0, codes, None, np.array([10, 20]), Response([2, 1], [0.5, 3.0, 5.0]))
    np.testing.assert_array_equal(seen, [1, 0])  # by hour 2 only the 0.5 h click is in
    want = {0: [1, 0], 1: [2, 0], 2: [2, 1]}  # round ends at hours 2, 4, 6
    for r, clicks in want.items():
        obs = ledger.observe(r)
        np.testing.assert_array_equal(obs.clicks, clicks)
        np.testing.assert_array_equal(obs.impressions, [10, 20])
        np.testing.assert_allclose(obs.age, [2.0 * (r + 1)] * 2)
        np.testing.assert_array_equal(obs.round, [0, 0])
        assert obs.delay_counts.sum() == sum(clicks)
    bins = np.searchsorted(DELAY_EDGES, [0.5, 3.0, 5.0], side="right") - 1
    np.testing.assert_array_equal(np.flatnonzero(obs.delay_counts), np.unique(bins))
    # a second round is its own cohort; without time the rounds merge
    ledger.add(3, codes[:1], None, np.array([5]), Response([0], []))
    assert ledger.observe(3).num_rows == 3
    flat = Ledger(space, segmented=False, hours_per_round=None)
    for r in range(2):
        flat.add(r, codes, None, np.array([10, 20]), Response([1, 2], None))
    obs = flat.observe(1)
    np.testing.assert_array_equal(obs.impressions, [20, 40])
    np.testing.assert_array_equal(obs.clicks, [2, 4])
    assert obs.age is None and obs.round is None


# ---------------------------------------------------------------------------- time worlds
TIME_SPACE = lo.LayoutSpace({"h": ["h0", "h1", "h2"], "i": ["i0", "i1"]})


class _Recording:
    """A TimeWorld that remembers every eventual click and its arrival hour."""

    def __init__(self, world: TimeWorld):
        self.world, self.space = world, world.space
        self.shares, self.hours_per_round = None, world.hours_per_round
        self.clicks: list = []

    def respond(self, codes, impressions, *, segment, round, rng):
        got = self.world.respond(codes, impressions, segment=segment, round=round, rng=rng)
        rows = np.repeat(np.arange(len(codes)), got.clicks)
        hours = round * self.hours_per_round + got.delays
        index = TIME_SPACE.indices(codes)[rows]
        self.clicks += [(round, int(i), h) for i, h in zip(index, hours, strict=True)]
        return got


def _slow_world(**kwargs):
    truth = SyntheticWorld.random(TIME_SPACE, seed=1, base_rate=0.1, main_scale=0.4)
    return TimeWorld(truth, lo.Weibull(0.8, 6.0), hours_per_round=2.0, **kwargs)


def test_time_world_clicks_are_visible_only_after_maturing():
    rec = _Recording(_slow_world())
    seen = []
    run(policies.uniform(), rec, budget=6000, batch_size=1000, seed=0, callback=seen.append)
    for info in seen:
        obs, now = info.observations, (info.round + 1) * 2.0
        index = TIME_SPACE.indices(obs.codes)
        for i, r, c, age in zip(index, obs.round, obs.clicks, obs.age, strict=True):
            arrived = sum(1 for rr, ii, h in rec.clicks if (rr, ii) == (r, i) and h <= now)
            assert c == arrived
            assert age == now - 2.0 * r
        assert obs.delay_counts.sum() == obs.clicks.sum()
    eventual = len(rec.clicks)
    # mean delay ~6.8 h against 2 h rounds: a large share of the clicks is still on its way
    assert seen[-1].observations.clicks.sum() < 0.85 * eventual


@pytest.mark.slow
def test_delay_auto_on_driver_data_is_less_biased_than_naive():
    world = _slow_world()
    _, obs = run(policies.uniform(), world, budget=8000, batch_size=2000, seed=0)
    codes = TIME_SPACE.codes(np.arange(TIME_SPACE.size))
    truth = world.world.ctr(codes)
    bias = {}
    for delay in (None, "auto"):
        post = lo.fit(TIME_SPACE, obs, delay=delay, seed=0, num_samples=400)
        mean = np.asarray(lo.score_layouts(post, TIME_SPACE, TIME_SPACE.frame(codes))["mean"])
        bias[delay] = float(np.mean(mean / truth - 1))
    # Half the impressions are < 4 h old against a ~6.8 h mean delay: naive reads CTRs
    # about half too low. With ~800 clicks the Monte Carlo error of a mean relative bias is
    # ~0.05, so the margins below are many standard errors wide.
    assert bias[None] < -0.3
    assert abs(bias["auto"]) < 0.15


def test_half_life_follows_the_change():
    before = SyntheticWorld.random(TIME_SPACE, seed=2, base_rate=0.1, main_scale=0.5)
    p = before.params
    after = SyntheticWorld(
        TIME_SPACE, lo.Params(p.intercept, tuple(-m for m in p.main), tuple(-t for t in p.pair))
    )
    world = TimeWorld(before, hours_per_round=1.0, change_round=6, after=after)
    _, obs = run(policies.uniform(), world, budget=9 * 1200, batch_size=1200, seed=0)
    codes = TIME_SPACE.codes(np.arange(TIME_SPACE.size))
    truth = after.ctr(codes)
    corr = {}
    for half_life in (None, 1.0):
        post = lo.fit(TIME_SPACE, obs, half_life=half_life, seed=0, num_samples=400)
        mean = np.asarray(lo.score_layouts(post, TIME_SPACE, TIME_SPACE.frame(codes))["mean"])
        corr[half_life] = float(np.corrcoef(mean, truth)[0, 1])
    # Six rounds before the flip, three after: unweighted data still point at the old
    # order (negative correlation with the new truth); rounds discounted by half each
    # round follow the new one.
    assert corr[None] < 0.0
    assert corr[1.0] > 0.8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"delay": "gamma"}, "delay must be None, 'auto'"),
        ({"half_life": 0.0}, "half_life must be None, 'auto' or a positive number of rounds"),
        ({"half_life": True}, "half_life must be None, 'auto' or a positive number"),
    ],
)
def test_model_policy_refuses_bad_time_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        policies.thompson(**kwargs)


@pytest.mark.slow
def test_model_policy_fits_with_its_delay_and_half_life():
    infos = []
    run_campaign(
        _slow_world(),
        policy=policies.thompson(k=2, num_samples=100, delay="auto", half_life=2.0),
        budget=3000,
        batch_size=1000,
        seed=0,
        callback=lambda info, rec: infos.append(info),
    )
    post = infos[-1].posterior
    assert post.diagnostics["half_life"] == 2.0
    assert "estimated" in post.diagnostics["delay"]
    assert infos[-1].observations.round.max() == 2


# ------------------------------------------------------------------ audiences in time
def _segment_time_world(**kwargs):
    return TimeWorld(_segment_world(), lo.Weibull(0.8, 6.0), hours_per_round=2.0, **kwargs)


@pytest.mark.slow
def test_audiences_in_time_keep_shares_and_late_clicks():
    """A TimeWorld over a SegmentWorld: each round splits over the audiences by share, the
    ledger has (layout, segment, round) cohorts with ages, and clicks arrive late."""
    world = _segment_time_world()
    seen = []
    policy = policies.thompson(k=3, delay=lo.Weibull(0.8, 6.0), **MODEL)
    _, obs = run(policy, world, budget=6000, batch_size=1000, seed=0, callback=seen.append)
    assert obs.segments is not None and obs.age is not None and obs.round is not None
    per_segment = np.bincount(obs.segments, weights=obs.impressions, minlength=2)
    # 6,000 impressions split 70/30 by a multinomial per round: sd of the prime share ~0.006
    assert per_segment[0] / 6000 == pytest.approx(SHARES[0], abs=0.03)
    assert obs.delay_counts.sum() == obs.clicks.sum()
    assert all(info.segment_picks is not None for info in seen[1:])
    # the same rows served again, every click counted at once: clearly more clicks
    eventual = 0
    rng = np.random.default_rng(1)
    for g in (0, 1):
        at = obs.segments == g
        eventual += world.at(0).serve(obs.codes[at], obs.impressions[at], g, rng).sum()
    # mean delay ~6.8 h against 2 h rounds: many clicks of the last rounds are still on
    # their way (eventual ~480 clicks; Poisson sd ~22)
    assert obs.clicks.sum() < 0.85 * eventual


def test_event_log_of_audiences_in_time_reads_back_per_segment():
    world = _segment_time_world()
    rng = np.random.default_rng(2)
    n = 60_000
    idx = rng.integers(0, SEG_SPACE.size, n)
    seg = (rng.random(n) > SHARES[0]).astype(np.int64)
    log = event_log(world, SEG_SPACE.codes(idx), rng.uniform(0, 200, n), 400.0, rng, segments=seg)
    assert {"member", "served_at", "clicked_at"} <= set(log.columns)
    obs = lo.Observations.from_events(log, SEG_SPACE, now="2026-01-17T16:00")
    # 200 h after the last impression, clicks delayed ~6.8 h have all arrived: the clicks
    # per segment match the world's CTRs (~30,000 impressions per segment at CTR ~0.1:
    # sd ~55 clicks, 5 sd < 10%)
    for g in (0, 1):
        at = obs.segments == g
        want = world.truth(SEG_SPACE.indices(obs.codes[at]), g, 0) @ obs.impressions[at]
        assert obs.clicks[at].sum() == pytest.approx(want, rel=0.1)
    with pytest.raises(ValueError, match="one segment code per impression"):
        event_log(world, SEG_SPACE.codes(idx[:5]), np.zeros(5), 1.0, rng)


def test_time_world_after_must_match_the_world_kind_and_shares():
    plain = SyntheticWorld.random(SEG_SPACE, seed=1)
    with pytest.raises(ValueError, match="after must be a SegmentWorld like world"):
        TimeWorld(_segment_world(), change_round=2, after=plain)
    other = SegmentWorld.random(SEG_SPACE, seed=3, shares=[0.5, 0.5])
    with pytest.raises(ValueError, match="keep the audiences' traffic shares"):
        TimeWorld(_segment_world(), change_round=2, after=other)
