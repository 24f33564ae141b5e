"""fit(half_life=...): power-prior discounting of older rounds."""

from __future__ import annotations

import numpy as np
import pytest

import layoutopt as lo


@pytest.fixture(scope="module")
def space():
    return lo.LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b"]})


BAD_HALF_LIFE = "half_life must be None, 'auto' or a positive number of rounds"


def _codes(space):
    return space.codes(np.arange(space.size))


def test_half_life_is_a_power_prior_on_counts(space):
    """Two identical rounds with half_life=1: round 0 weighs 1/2, so 1.5x one round."""
    codes = _codes(space)
    n, c = np.array([200, 200, 400, 400]), np.array([10, 30, 12, 40])
    two = lo.Observations.from_codes(
        space, np.concatenate([codes, codes]), np.tile(n, 2), np.tile(c, 2), round=[0] * 4 + [1] * 4
    )
    scaled = lo.Observations.from_codes(space, codes, n * 3 // 2, c * 3 // 2)
    prior = lo.PriorConfig(base_rate=0.05)
    a = lo.fit(space, two, half_life=1.0, prior=prior, seed=0, num_samples=4000)
    b = lo.fit(space, scaled, prior=prior, seed=0, num_samples=4000)
    # Same objective up to rounding, so the same mode and curvature; the same seed draws
    # the same normals, so the draws agree to float32 rounding.
    np.testing.assert_allclose(a.mean_params().intercept, b.mean_params().intercept, atol=1e-4)
    sa = lo.score_layouts(a, space, space.frame(codes))
    sb = lo.score_layouts(b, space, space.frame(codes))
    np.testing.assert_allclose(sa["mean"], sb["mean"], rtol=1e-3)
    np.testing.assert_allclose(sa["upper"] - sa["lower"], sb["upper"] - sb["lower"], rtol=1e-2)
    assert a.diagnostics["half_life"] == 1.0


def test_posterior_follows_a_change_of_taste(space):
    """h1/a is best for 10 rounds, then h2/b; a short half-life picks the new best."""
    codes = _codes(space)
    before, after = np.array([0.08, 0.04, 0.04, 0.03]), np.array([0.03, 0.04, 0.04, 0.08])
    rng = np.random.default_rng(0)
    rows, imps, clicks, rounds = [], [], [], []
    for r in range(12):
        p = before if r < 10 else after
        n = np.full(4, 2000)
        rows.append(codes)
        imps.append(n)
        clicks.append(rng.binomial(n, p))
        rounds.append(np.full(4, r))
    obs = lo.Observations.from_codes(
        space,
        np.concatenate(rows),
        np.concatenate(imps),
        np.concatenate(clicks),
        round=np.concatenate(rounds),
    )
    stale = lo.best_layout(lo.fit(space, obs, seed=0), space)
    fresh_post = lo.fit(space, obs, half_life=1.0, seed=0)
    fresh = lo.best_layout(fresh_post, space)
    # Pooled over 12 rounds h1/a still averages 7.2% vs 2.1% ... clearly ahead; with
    # half_life=1 the last two rounds carry 2/3 of the weight.
    assert stale.layout == {"headline": "h1", "image": "a"}
    assert fresh.layout == {"headline": "h2", "image": "b"}
    # Less effective data: wider intervals.
    assert (fresh.upper - fresh.lower) > (stale.upper - stale.lower)


def test_age_in_hours_when_there_is_no_round(space):
    codes = _codes(space)
    obs = lo.Observations.from_codes(space, codes, [100] * 4, [5] * 4, age=[0.0, 1.0, 2.0, 3.0])
    post = lo.fit(space, obs, half_life=24.0, seed=0, num_samples=10)
    assert post.diagnostics["half_life"] == 24.0


@pytest.mark.parametrize(
    "half_life, kwargs, message",
    [
        (0.0, {"round": [0, 1, 2, 3]}, BAD_HALF_LIFE),
        (True, {"round": [0, 1, 2, 3]}, BAD_HALF_LIFE),
        (float("nan"), {"round": [0, 1, 2, 3]}, BAD_HALF_LIFE),
        ("fast", {"round": [0, 1, 2, 3]}, BAD_HALF_LIFE),
        ("auto", {"age": [0.0, 1.0, 2.0, 3.0]}, "half_life='auto' .* 'round' column"),
        (2.0, {}, "half_life needs observations with a 'round' column"),
    ],
)
def test_bad_half_life(space, half_life, kwargs, message):
    obs = lo.Observations.from_codes(space, _codes(space), [100] * 4, [5] * 4, **kwargs)
    with pytest.raises(ValueError, match=message):
        lo.fit(space, obs, half_life=half_life)


def test_time_columns_round_trip_and_validate(space, tmp_path):
    codes = _codes(space)
    obs = lo.Observations.from_codes(
        space, codes, [100] * 4, [5] * 4, age=[1.5, 2.0, 2.0, 9.0], round=[0, 0, 1, 1]
    )
    df = obs.to_frame()
    assert list(df.columns)[-2:] == ["age", "round"]
    df.to_csv(tmp_path / "o.csv", index=False)
    back = lo.Observations.from_csv(tmp_path / "o.csv", space)
    np.testing.assert_array_equal(back.round, obs.round)
    np.testing.assert_allclose(back.age, obs.age)
    df["round"] = df["round"].astype(float)
    df.loc[2, "round"] = 1.5
    with pytest.raises(ValueError, match=r"row 3, column 'round': 1.5 is not valid"):
        lo.Observations.from_frame(df, space)
    df.loc[2, "round"] = 1
    df.loc[1, "age"] = -1
    with pytest.raises(ValueError, match=r"row 2, column 'age': -1(.0)? is not valid"):
        lo.Observations.from_frame(df, space)


def test_time_world_switches_at_the_change_round(space):
    from layoutopt.sim.simulate import SyntheticWorld
    from layoutopt.sim.timeworld import TimeWorld, served_clicks

    a = SyntheticWorld.random(space, seed=0)
    b = SyntheticWorld.random(space, seed=1)
    world = TimeWorld(a, lo.Exponential(0.5), hours_per_round=2.0, change_round=3, after=b)
    assert world.at(2) is a and world.at(3) is b
    row, hour = served_clicks(world, _codes(space), np.full(4, 5000), 4, np.random.default_rng(0))
    assert hour.min() >= 8.0  # round 4 is served at hour 4 * 2
    # Mean delay 2 h; ~1,000 clicks: sd of the mean ~0.06 h.
    assert np.mean(hour - 8.0) == pytest.approx(2.0, abs=0.25)
    with pytest.raises(ValueError, match="change_round and after go together"):
        TimeWorld(a, change_round=3)
    with pytest.raises(ValueError, match="hours_per_round must be > 0"):
        TimeWorld(a, hours_per_round=0.0)


def test_time_campaign_records_every_round(space):
    from layoutopt.sim.simulate import SyntheticWorld, run_campaign
    from layoutopt.sim.timeworld import TimeWorld

    world = TimeWorld(SyntheticWorld.random(space, seed=0, base_rate=0.1), lo.Exponential(0.2))
    policy = lo.policies.thompson(k=2, delay="auto", half_life=2.0, num_samples=500)
    res = run_campaign(world, policy=policy, budget=2000, batch_size=1000, seed=0)
    assert res.simple_regret.shape == (2,) and res.interval_width.shape == (2,)
    assert np.all(res.simple_regret >= 0) and np.all(res.interval_width > 0)


def test_cli_fit_takes_delay_and_half_life(space, tmp_path, capsys):
    """`layoutopt fit --delay ... --half-life ...` is the API fit with the same model."""
    from layoutopt.cli.app import main

    (tmp_path / "s.toml").write_text(space.to_toml())
    codes = _codes(space)
    obs = lo.Observations.from_codes(
        space,
        np.concatenate([codes, codes]),
        np.full(8, 500),
        np.array([20, 30, 25, 40, 5, 8, 6, 10]),
        age=[30.0] * 4 + [2.0] * 4,
        round=[0] * 4 + [1] * 4,
    )
    obs.to_frame().to_csv(tmp_path / "d.csv", index=False)
    argv = ["fit", "--space", str(tmp_path / "s.toml"), "--data", str(tmp_path / "d.csv")]
    out = tmp_path / "p.nc"
    assert main([*argv, "-o", str(out), "--delay", "weibull:0.8,10", "--half-life", "2"]) == 0
    post = lo.Posterior.load(out)
    direct = lo.fit(
        space,
        lo.Observations.from_csv(tmp_path / "d.csv", space),
        delay=lo.Weibull(0.8, 10.0),
        half_life=2.0,
        seed=0,
    )
    np.testing.assert_array_equal(post.params.intercept, direct.params.intercept)
    assert post.diagnostics["half_life"] == 2.0 and "Weibull" in post.diagnostics["delay"]
    # without the delay model round 1's young cohorts look like a collapse of the CTR
    # (1.2% after 5.75%): "auto" calls it a change of taste
    assert main([*argv, "-o", str(out), "--half-life", "auto"]) == 0
    assert lo.Posterior.load(out).diagnostics["change_round"] == 1
    capsys.readouterr()
    bad = tmp_path / "q.nc"
    flags = (["--delay", "gamma:2"], ["--delay", "exponential:-1"], ["--half-life", "0"])
    for flag in (*flags, ["--half-life", "soon"]):
        assert main([*argv, "-o", str(bad), *flag]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0]
        assert not bad.exists()


def test_parse_delay_spellings():
    from layoutopt.model.delay import parse_delay

    assert parse_delay("auto") == "auto"
    assert parse_delay("exponential:0.5").rate == 0.5
    assert parse_delay("Weibull:0.8,10").weibull == (0.8, 10.0)
    for text in ("auto:1", "weibull:1", "exp:1", ""):
        with pytest.raises(ValueError, match="valid: 'auto'"):
            parse_delay(text)


def test_delay_spec_round_trips_through_parse_delay():
    from layoutopt.model.delay import delay_spec, parse_delay

    for delay in (None, "auto", lo.Exponential(0.3), lo.Weibull(0.8, 10.0 / 3.0)):
        spec = delay_spec(delay)
        assert (spec if delay is None else parse_delay(spec)) == delay
    assert delay_spec(lo.Exponential(0.2)) == "exponential:0.2"
    with pytest.raises(ValueError, match="delay must be None, 'auto', Exponential or Weibull"):
        delay_spec("gamma")
