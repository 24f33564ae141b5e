"""Campaigns: rounds of ingest → fit → propose recorded in the store, space versions, the
``layoutopt campaign`` command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from layoutopt.campaign.campaign import Campaign
from layoutopt.cli.app import main
from layoutopt.data.observations import Observations
from layoutopt.decide.design import initial_design
from layoutopt.infer.fitting import fit
from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.util.seeds import split_seed

SPACE = LayoutSpace(
    {"headline": ["h1", "h2", "h3"], "image": ["i1", "i2"], "reviews": ["none", "stars", "quote"]}
)
# a known truth: h2 + i1 + stars is best
EFFECTS = {"h2": 0.5, "i1": 0.3, "stars": 0.4}


def served(space: LayoutSpace, layouts: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` impressions per layout with clicks drawn from the known truth."""
    rng = np.random.default_rng(seed)
    frame = layouts[list(space.components)].astype(str)
    eta = -2.2 + sum(frame[c].map(lambda v: EFFECTS.get(v, 0.0)) for c in space.components)
    frame["impressions"] = n
    frame["clicks"] = rng.binomial(n, 1 / (1 + np.exp(-eta.to_numpy())))
    return frame


def test_rounds_are_recorded_and_resumable(store_target):
    design = initial_design(SPACE, seed=0)
    with Campaign.create(store_target, SPACE, name="signup") as camp:
        assert camp.ingest(served(SPACE, design, 2000, seed=1)).round == 0
        first = camp.propose(k=4, strategy="thompson", seed=5)
        assert first.round == 1 and first.refit == "fitted laplace first (no fit yet)"
        assert camp.stale() is None
        assert camp.ingest(served(SPACE, first.layouts, 2000, seed=2)).round == 1
        assert camp.stale() == "1 batch(es) ingested since the last fit"
        second = camp.propose(k=4, strategy="top_two", seed=6)
        assert second.round == 2 and "1 batch(es) ingested since the last fit" in second.refit
        third = camp.propose(k=4, strategy="thompson", seed=7, new_round=True)
        assert third.refit is None  # nothing new: the same fit
        assert third.fit_id == second.fit_id
    with Campaign.open(store_target) as camp:  # another process would see the same
        assert camp.rounds == 3
        hist = camp.history()
        props = camp.proposals()
        pick = camp.best()
    assert hist["round"].tolist() == [0, 1, 2, 3]
    assert hist["strategy"].tolist() == ["initial design", "thompson", "top_two", "thompson"]
    assert hist["seed"].tolist()[1:] == [5, 6, 7]
    assert hist["impressions"].tolist() == [2000 * len(design), 2000 * len(first.layouts), 0, 0]
    # the pick of round 0 comes from the fit round 1 was proposed from, round 1's from round 2's
    assert hist["fit_id"].tolist()[:3] == [first.fit_id, second.fit_id, second.fit_id]
    assert np.isnan(hist["mean"].iloc[3])  # round 3 has no data yet
    assert (hist["lower"] <= hist["mean"]).iloc[:3].all()
    assert sorted(props["round"].unique()) == [1, 2, 3]
    assert props.loc[props["round"] == 2, "strategy"].eq("top_two").all()
    assert pick.layout == {"headline": "h2", "image": "i1", "reviews": "stars"}


def test_proposals_are_reproducible_and_posteriors_round_trip(tmp_path):
    design = initial_design(SPACE, seed=0)
    data = served(SPACE, design, 1000, seed=3)
    batches = []
    for name in ("a.db", "b.db"):
        with Campaign.create(tmp_path / name, SPACE) as camp:
            camp.ingest(data)
            batches.append(camp.propose(k=5, seed=11).layouts)
            stored = camp.posterior()
        with Campaign.open(tmp_path / name) as camp:
            loaded = camp.posterior()  # from the NetCDF bytes in the store
        np.testing.assert_array_equal(
            np.asarray(stored.params.main[0]), np.asarray(loaded.params.main[0])
        )
        assert isinstance(loaded, Posterior) and loaded.space == SPACE
    pd.testing.assert_frame_equal(batches[0], batches[1])


def test_update_space_appends_variants_and_keeps_data(tmp_path):
    with Campaign.create(tmp_path / "c.db", SPACE) as camp:
        camp.ingest(served(SPACE, initial_design(SPACE, seed=0), 500, seed=4))
        before = camp.observations()
        camp.fit(seed=0)
        grown = LayoutSpace(
            {
                "headline": ["h1", "h2", "h3", "h4"],
                "image": ["i1", "i2"],
                "reviews": ["none", "stars", "quote"],
            }
        )
        assert camp.update_space(grown) == 2
        assert camp.space == grown and camp.stale() == "the space changed since the last fit"
        after = camp.observations()
        np.testing.assert_array_equal(before.codes, after.codes)
        assert after.space == grown
        reordered = LayoutSpace(
            {
                "headline": ["h2", "h1", "h3"],
                "image": ["i1", "i2"],
                "reviews": ["none", "stars", "quote"],
            }
        )
        with pytest.raises(ValueError, match=r"component 'headline' .* must keep their positions"):
            camp.update_space(reordered)
        fewer = LayoutSpace({"headline": ["h1", "h2", "h3", "h4"], "image": ["i1", "i2"]})
        with pytest.raises(ValueError, match=r"a campaign keeps its components"):
            camp.update_space(fewer)
        assert camp.space_version == 2
        # data on the new variant are accepted now
        assert camp.ingest(
            pd.DataFrame(
                {
                    "headline": ["h4"],
                    "image": ["i2"],
                    "reviews": ["quote"],
                    "impressions": [10],
                    "clicks": [1],
                }
            )
        ).added


def test_propose_and_best_need_data_and_a_fit(tmp_path):
    with Campaign.create(tmp_path / "c.db", SPACE) as camp:
        with pytest.raises(ValueError, match=r"no data ingested yet"):
            camp.propose(k=3, seed=0)
        with pytest.raises(ValueError, match=r"not fitted yet"):
            camp.best()
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, "):
            camp.propose(k=3, seed=-1)
        with pytest.raises(ValueError, match=r"unknown strategy 'best'"):
            camp.propose(k=3, strategy="best", seed=0)


# ------------------------------------------------------------------------------------ CLI
def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_campaign_session(tmp_path, capsys):
    space_file = tmp_path / "space.toml"
    space_file.write_text(SPACE.to_toml())
    db = str(tmp_path / "c.db")
    code, out, _ = run(
        capsys, "campaign", "init", "--space", str(space_file), "--db", db, "--name", "n1"
    )
    assert code == 0 and "created campaign 'n1'" in out
    design = tmp_path / "design.csv"
    assert (
        run(capsys, "design", "--space", str(space_file), "--seed", "0", "-o", str(design))[0] == 0
    )
    r0 = tmp_path / "r0.csv"
    served(SPACE, pd.read_csv(design), 2000, seed=1).to_csv(r0, index=False)
    code, out, _ = run(capsys, "campaign", "ingest", "--db", db, str(r0), str(r0))
    assert code == 0
    assert "answers round 0" in out and "already ingested (batch 1); nothing added" in out
    nxt = tmp_path / "next.csv"
    code, _, err = run(
        capsys, "campaign", "propose", "--db", db, "--k", "4", "--seed", "3", "-o", str(nxt)
    )
    assert code == 0 and "fitted laplace first (no fit yet)" in err and "round 1" in err
    r1 = tmp_path / "r1.csv"
    served(SPACE, pd.read_csv(nxt), 2000, seed=2).to_csv(r1, index=False)
    assert run(capsys, "campaign", "ingest", "--db", db, str(r1))[0] == 0
    code, out, _ = run(capsys, "campaign", "fit", "--db", db, "--seed", "1")
    assert code == 0 and "fitted laplace (seed 1)" in out
    code, out, _ = run(capsys, "campaign", "best", "--db", db, "--json")
    record = json.loads(out)
    assert record["layout"] == {"headline": "h2", "image": "i1", "reviews": "stars"}
    assert record["stale"] is None and 0 <= record["lower"] <= record["mean"] <= record["upper"]
    code, out, _ = run(capsys, "campaign", "status", "--db", db)
    assert code == 0 and "campaign 'n1'" in out and "thompson, k=4" in out
    export = tmp_path / "export"
    assert run(capsys, "campaign", "export", "--db", db, "-o", str(export))[0] == 0
    hist = pd.read_parquet(export / "history.parquet")
    assert hist["round"].tolist() == [0, 1]
    assert len(pd.read_parquet(export / "proposals.parquet")) == len(pd.read_csv(nxt))
    assert pd.read_parquet(export / "observations.parquet")["impressions"].sum() == 2000 * (
        len(pd.read_csv(design)) + len(pd.read_csv(nxt))
    )


def test_cli_campaign_errors_are_one_line(tmp_path, capsys):
    space_file = tmp_path / "space.toml"
    space_file.write_text(SPACE.to_toml())
    db = str(tmp_path / "c.db")
    code, _, err = run(capsys, "campaign", "ingest", "--db", db, "x.csv")
    assert code == 2 and err.startswith("error: ") and "no such campaign store" in err
    assert run(capsys, "campaign", "init", "--space", str(space_file), "--db", db)[0] == 0
    bad = tmp_path / "bad.csv"
    frame = served(SPACE, initial_design(SPACE, seed=0), 100, seed=0)
    frame.loc[3, "image"] = "i9"
    frame.to_csv(bad, index=False)
    code, _, err = run(capsys, "campaign", "ingest", "--db", db, str(bad))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{bad}: row 4, column 'image': unknown variant 'i9'" in err
    code, _, err = run(capsys, "campaign", "propose", "--db", db)
    assert code == 2 and "no data ingested yet" in err
    code, _, err = run(capsys, "campaign", "init", "--space", str(space_file), "--db", db)
    assert code == 2 and "campaign 'default' already exists" in err
    code, _, err = run(capsys, "campaign", "report", "--db", db, "-o", str(tmp_path / "r.pdf"))
    assert code == 2 and "unsupported output format '.pdf'" in err
    assert not (tmp_path / "r.pdf").exists()


def test_meta_prior_is_kept_and_used_by_every_fit(tmp_path):
    from layoutopt.infer.fitting import fit
    from layoutopt.infer.meta import MetaPrior

    design = initial_design(SPACE, seed=0)
    data = served(SPACE, design, 300, seed=3)
    past = [
        fit(SPACE, Observations.from_frame(served(SPACE, design, 2000, seed=s), SPACE), seed=s)
        for s in (11, 12)
    ]
    meta = MetaPrior.learn(past, sources=["spring", "summer"])
    target = tmp_path / "camp.db"
    with Campaign.create(target, SPACE, name="c") as camp:
        assert camp.prior is None
        camp.ingest(data)
        default = camp.fit(seed=4)
        camp.set_prior(meta)
    with Campaign.open(target) as camp:  # kept in the store, across processes
        assert camp.prior.to_dict() == meta.to_dict()
        post = camp.fit(seed=4)
        with pytest.raises(ValueError, match="MetaPrior"):
            camp.set_prior({"intercept": 0.0})
    # the stored fit is exactly the meta-prior fit of the same data and seed
    from layoutopt.util.seeds import split_seed

    direct = fit(SPACE, camp_obs(target), seed=split_seed(4, 2)[0], prior=meta)
    np.testing.assert_array_equal(post.params.intercept, direct.params.intercept)
    assert not np.array_equal(post.params.intercept, default.params.intercept)


def camp_obs(target):
    with Campaign.open(target) as camp:
        return camp.observations()


def test_campaign_stores_and_reads_segments(tmp_path):
    space = LayoutSpace(
        {"headline": ["h1", "h2"], "image": ["i1", "i2"]}, segments={"member": ["prime", "non"]}
    )
    layouts = pd.DataFrame({"headline": ["h1", "h1", "h2", "h2"], "image": ["i1", "i2"] * 2})
    frames = []
    for member, n in (("prime", 700), ("non", 300)):
        part = served(space, layouts, n, seed=1).assign(member=member)
        frames.append(part)
    data = pd.concat(frames, ignore_index=True)
    csv = tmp_path / "seg.csv"
    data.to_csv(csv, index=False)
    with Campaign.create(tmp_path / "seg.db", space) as camp:
        camp.ingest(csv)
        obs = camp.observations()
    expected = Observations.from_frame(data, space)
    np.testing.assert_array_equal(obs.segments, expected.segments)
    np.testing.assert_array_equal(obs.codes, expected.codes)
    np.testing.assert_array_equal(obs.clicks, expected.clicks)
    np.testing.assert_array_equal(obs.segment_shares(), [0.7, 0.3])


# ---------------------------------------------------------------- time: delays and drift
def event_frame(space: LayoutSpace, n: int, seed: int, start_hour: float, hours: float):
    """``n`` impressions of random layouts served over ``hours`` from ``start_hour`` after
    2026-01-01, clicks from the known truth after an exponential delay (mean 5 h); clicks
    after the extraction time ``start_hour + hours`` are not in the log."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, space.size, n)
    frame = space.frame(space.codes(idx)).astype(str)
    eta = -2.2 + sum(frame[c].map(lambda v: EFFECTS.get(v, 0.0)) for c in space.components)
    served = start_hour + rng.uniform(0, hours, n)
    click = served + rng.exponential(5.0, n)
    seen = (rng.random(n) < 1 / (1 + np.exp(-eta.to_numpy()))) & (click <= start_hour + hours)
    t0 = pd.Timestamp("2026-01-01")
    frame["served_at"] = t0 + pd.to_timedelta(served, unit="h")
    frame["clicked_at"] = (t0 + pd.to_timedelta(click, unit="h")).where(seen)
    return frame, t0 + pd.Timedelta(hours=start_hour + hours)


def test_event_logs_keep_ages_and_delays_for_the_fit(store_target, tmp_path):
    log, now = event_frame(SPACE, 40_000, seed=1, start_hour=0, hours=48)
    log.to_parquet(tmp_path / "day1.parquet")
    with Campaign.create(store_target, SPACE) as camp:
        first = camp.ingest_events(tmp_path / "day1.parquet", now=now)
        assert first.added and first.rows == 40_000 and first.round == 0
        assert not camp.ingest_events(tmp_path / "day1.parquet", now=now).added
        # the same log extracted at another time is other content (other ages)
        later = camp.ingest_events(log, now=now + pd.Timedelta(hours=1))
        assert later.added
    with Campaign.open(store_target) as camp:
        obs = camp.observations(time=True)
        plain = camp.observations()
    want = Observations.from_events(log, SPACE, now=now)
    want_later = Observations.from_events(log, SPACE, now=now + pd.Timedelta(hours=1))
    # two batches: every cohort of both extractions, ages as they were at each `now`
    assert obs.impressions.sum() == 80_000 == plain.impressions.sum()
    assert obs.clicks.sum() == want.clicks.sum() + want_later.clicks.sum()
    np.testing.assert_array_equal(obs.delay_counts, want.delay_counts + want_later.delay_counts)
    np.testing.assert_allclose(
        np.sort(obs.age), np.sort(np.concatenate([want.age, want_later.age]))
    )
    assert plain.age is None and plain.round is None


@pytest.mark.slow
def test_fit_with_delay_and_half_life_is_recorded_and_reused(tmp_path):
    db = tmp_path / "c.db"
    log, now = event_frame(SPACE, 30_000, seed=2, start_hour=0, hours=24)
    with Campaign.create(db, SPACE) as camp:
        camp.ingest_events(log, now=now)
        post = camp.fit(seed=0, num_samples=200, delay="auto", half_life=2.0)
        assert "(estimated)" in post.diagnostics["delay"]
        assert post.diagnostics["half_life"] == 2.0
        direct = fit(
            SPACE,
            camp.observations(time=True),
            seed=split_seed(0, 2)[0],
            num_samples=200,
            delay="auto",
            half_life=2.0,
        )
        np.testing.assert_array_equal(post.params.intercept, direct.params.intercept)
        fits = camp.store.fits(camp.campaign_id)
        assert fits[-1]["options"]["delay"] == "auto" and fits[-1]["options"]["half_life"] == 2.0
        more, later = event_frame(SPACE, 30_000, seed=3, start_hour=24, hours=24)
        camp.ingest_events(more, now=later)
        camp.propose(k=3, seed=4)  # data arrived: refits with the latest fit's options
        again = camp.store.fits(camp.campaign_id)[-1]
        assert again["options"] == fits[-1]["options"]  # num_samples 200 included
        assert "(estimated)" in again["diagnostics"]["delay"]
        # rows answer round 0 and round 1 (after the proposal): half_life sees two rounds
        obs = camp.observations(time=True)
        assert sorted(set(obs.round.tolist())) == [0]  # both batches came before propose
        camp.ingest(served(SPACE, initial_design(SPACE, seed=0), 500, seed=5))
        with pytest.raises(ValueError, match="delay needs the age of every stored row"):
            camp.fit(seed=0, delay="auto")
        assert sorted(set(camp.observations(time=True).round.tolist())) == [0, 1]


def test_cli_campaign_takes_event_logs_delay_and_half_life(tmp_path, capsys):
    log, now = event_frame(SPACE, 20_000, seed=6, start_hour=0, hours=24)
    path = tmp_path / "events.parquet"
    log.to_parquet(path)
    space_file = tmp_path / "space.toml"
    space_file.write_text(SPACE.to_toml())
    db = str(tmp_path / "c.db")
    assert run(capsys, "campaign", "init", "--space", str(space_file), "--db", db)[0] == 0
    code, out, _ = run(
        capsys, "campaign", "ingest", "--db", db, str(path), "--events", "--now", now.isoformat()
    )
    assert code == 0 and "20,000 rows" in out
    code, out, _ = run(
        capsys, "campaign", "fit", "--db", db, "--delay", "exponential:0.2", "--half-life", "3"
    )
    assert code == 0, out
    with Campaign.open(db) as camp:
        options = camp.store.fits(camp.campaign_id)[-1]["options"]
    assert options["delay"] == "exponential:0.2" and options["half_life"] == 3.0
    code, _, err = run(capsys, "campaign", "ingest", "--db", db, str(path), "--events")
    assert code == 2 and "--now" in err and "Traceback" not in err
