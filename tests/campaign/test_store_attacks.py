"""The store attacked while it works: ``kill -9`` at random moments of ``fit`` and ``propose``
(a fixed-seed schedule of several moments each), and writers of every kind (ingest, fit,
propose, assign) at once. Nothing is lost, nothing doubled, every round is whole (its
proposal and its options), and the next command works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from layoutopt.campaign.campaign import Campaign
from layoutopt.campaign.proposal_options import proposal_options
from layoutopt.campaign.store import engine_url
from layoutopt.model.space import LayoutSpace

pytestmark = pytest.mark.slow

SPACE = LayoutSpace({"a": ["a1", "a2", "a3", "a4"], "b": ["b1", "b2", "b3"], "c": ["c1", "c2"]})


def _results(seed: int, impressions: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = SPACE.frame(SPACE.codes(np.arange(SPACE.size))).drop(columns="index")
    return frame.assign(impressions=impressions, clicks=rng.binomial(impressions, 0.05, len(frame)))


def _rows(target: str) -> dict[str, int]:
    engine = sa.create_engine(engine_url(target))
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("batches", "observations", "fits", "proposals")
                if t in names
            }
    finally:
        engine.dispose()


def _cli(target: str, *args: str) -> subprocess.Popen:
    code = "import sys\nfrom layoutopt.cli.app import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, "campaign", *args, "--db", target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _whole(target: str) -> None:
    """Every round has its options; rounds are numbered 1..n; the store opens."""
    with Campaign.open(target) as camp:
        rounds = [p["round"] for p in camp.store.proposals(camp.campaign_id)]
        options = proposal_options(camp.store, camp.campaign_id)
        fits = camp.store.fits(camp.campaign_id)
    assert rounds == list(range(1, len(rounds) + 1))
    assert set(options) == set(rounds)
    for f in fits:  # a recorded fit is whole: its posterior reads back
        assert f["id"] is not None


@pytest.fixture
def campaign(store_target, tmp_path):
    with Campaign.create(store_target, SPACE) as camp:
        camp.ingest(_results(0))
        camp.fit(seed=0, num_samples=200)
        camp.propose(k=4, seed=None)
    (tmp_path / "more.csv").write_text(_results(1).to_csv(index=False))
    return store_target, tmp_path / "more.csv"


# moments after the process starts, seconds: spread over import, fit and write
MOMENTS = np.random.default_rng(7).uniform(0.3, 3.0, size=4).round(2).tolist()


@pytest.mark.parametrize("command", ["fit", "propose"])
def test_kill_9_at_random_moments_of_fit_and_propose(campaign, command):
    target, more = campaign
    with Campaign.open(target) as camp:
        camp.ingest(more)  # new data: both commands fit and write
    killed = 0
    for moment in MOMENTS:
        before = _rows(target)
        args = ("fit", "--seed", "1") if command == "fit" else ("propose", "--k", "4")
        proc = _cli(target, *args)
        deadline = time.monotonic() + moment
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.communicate(timeout=300)
        after = _rows(target)
        # nothing lost; at most one fit and one round more, each whole
        assert after["batches"] == before["batches"]
        assert after["observations"] == before["observations"]
        assert before["fits"] <= after["fits"] <= before["fits"] + 1
        assert before["proposals"] <= after["proposals"] <= before["proposals"] + 1
        _whole(target)
    assert killed >= 2, f"the schedule {MOMENTS} killed only {killed} runs"
    done = _cli(target, *(("fit", "--seed", "2") if command == "fit" else ("propose", "--k", "4")))
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    _whole(target)


def test_writers_of_every_kind_at_once(campaign, tmp_path):
    target, more = campaign
    units = tmp_path / "units.csv"
    pd.DataFrame({"unit": [f"u{i}" for i in range(500)]}).to_csv(units, index=False)
    procs = [
        _cli(target, "ingest", str(more)),
        _cli(target, "fit", "--seed", "3"),
        _cli(target, "propose", "--k", "4"),
        _cli(target, "assign", "--units", str(units), "-o", str(tmp_path / "a.csv")),
        _cli(target, "propose", "--k", "4"),
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    with Campaign.open(target) as camp:
        obs = camp.observations()
    # the ingest landed once, whole
    total = int(_results(0)["impressions"].sum() + _results(1)["impressions"].sum())
    assert int(obs.impressions.sum()) == total
    _whole(target)
    assigned = pd.read_csv(tmp_path / "a.csv")
    assert len(assigned) == 500 and assigned["unit"].is_unique
