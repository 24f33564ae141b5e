"""Running a campaign: sticky assignment from the store's rounds, with propensities."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from layoutopt.campaign.campaign import Campaign
from layoutopt.decide.design import initial_design
from layoutopt.model.space import LayoutSpace

SPACE = LayoutSpace(
    {"headline": ["h1", "h2", "h3"], "image": ["i1", "i2"], "reviews": ["none", "stars", "quote"]}
)
EFFECTS = {"h2": 0.3, "i1": 0.2, "stars": 0.25}
UNITS = [f"visitor-{i}" for i in range(4000)]


def served(frame: pd.DataFrame, n, seed: int) -> pd.DataFrame:
    """Impressions ``n`` (one per row, or a count per row) with clicks from a known truth."""
    rng = np.random.default_rng(seed)
    out = frame[list(SPACE.components)].astype(str).copy()
    eta = -2.2 + sum(out[c].map(lambda v: EFFECTS.get(v, 0.0)) for c in SPACE.components)
    out["impressions"] = n
    out["clicks"] = rng.binomial(out["impressions"], 1 / (1 + np.exp(-eta.to_numpy())))
    return out


def open_campaign(target, **kw) -> Campaign:
    """A campaign with a little round-0 data (so a proposal spreads its weight)."""
    camp = Campaign.create(target, SPACE, **kw)
    camp.ingest(served(initial_design(SPACE, seed=0), 60, seed=1))
    return camp


def within(freq: np.ndarray, p: np.ndarray, n: int) -> bool:
    """Served frequencies equal probabilities within 4 binomial standard errors (a check
    that fails by chance with probability < 1e-4 per layout)."""
    se = np.sqrt(np.maximum(p * (1 - p), 1e-12) / n)
    return bool(np.all(np.abs(freq - p) <= 4 * se + 1e-12))


def test_assign_is_sticky_with_exact_propensities(store_target):
    with open_campaign(store_target) as camp:
        first = camp.propose(k=6, seed=5)
        a1 = camp.assign(UNITS)
        assert list(a1.columns) == [
            "unit",
            *SPACE.components,
            "index",
            "round",
            "propensity",
            "redrawn",
            "holdout",
        ]
        plan = first.layouts.assign(index=first.layouts["index"].astype(int))
        assert len(plan) >= 2  # a real split to test against
        weights = dict(zip(plan["index"], plan["weight"], strict=True))
        assert (a1["round"] == 1).all() and not a1["redrawn"].any()
        assert np.allclose(a1["propensity"], a1["index"].map(weights), rtol=1e-12)
        freq = a1["index"].value_counts(normalize=True).reindex(plan["index"], fill_value=0)
        assert within(freq.to_numpy(), plan["weight"].to_numpy(), len(UNITS))
        pd.testing.assert_frame_equal(camp.assign(UNITS[::-1]).iloc[::-1].reset_index(drop=True),
                                      a1)  # fmt: skip
        # round 2: the units come back; a new cohort arrives
        camp.ingest(served(a1, 1, seed=2).assign(round=1))
        second = camp.propose(k=3, seed=6)
        newcomers = [f"new-{i}" for i in range(3000)]
        a2 = camp.assign(UNITS + newcomers)
    assert second.round == 2 and (a2["round"] == 2).all()
    back, new = a2.iloc[: len(UNITS)], a2.iloc[len(UNITS) :]
    kept = set(second.layouts["index"].astype(int))
    stays = a1["index"].isin(kept).to_numpy()
    assert np.array_equal(back["index"].to_numpy()[stays], a1["index"].to_numpy()[stays])
    assert np.array_equal(back["redrawn"].to_numpy(), ~stays)
    assert not new["redrawn"].any()
    assert set(a2["index"]) <= kept
    # propensity of a returning unit: the cohort's marginal, matching served frequencies
    for cohort in (back, new):
        p = cohort.groupby("index")["propensity"].first()
        assert cohort.groupby("index")["propensity"].nunique().eq(1).all()
        freq = cohort["index"].value_counts(normalize=True).reindex(p.index)
        assert within(freq.to_numpy(), p.to_numpy(), len(cohort))


def sdk_assign(doc: dict, unit: str, first_round: int) -> int:
    """An independent implementation of docs/assignment.md from allocation.json alone."""

    def h(r, u):
        msg = f"{doc['salt']}\x1f{r}\x1f{u}".encode()
        return int.from_bytes(hashlib.sha256(msg).digest()[:7], "big") >> 3

    rounds = {r["round"]: r["layouts"] for r in doc["history"]} | {doc["round"]: doc["layouts"]}

    def pick(hv, layouts):
        return next(lay["index"] for lay in layouts if hv < lay["threshold"])

    x = pick(h(first_round, unit), rounds[first_round])
    for r in range(first_round + 1, doc["round"] + 1):
        if all(lay["index"] != x for lay in rounds[r]):
            x = pick(h(r, unit), rounds[r])
    return x


@pytest.mark.slow
def test_assign_agrees_across_processes_and_with_the_spec(tmp_path):
    db = tmp_path / "c.db"
    with open_campaign(db) as camp:
        camp.propose(k=6, seed=5)
        a1 = camp.assign(UNITS[:500])
        camp.ingest(served(a1, 1, seed=2).assign(round=1))
        camp.propose(k=4, seed=6)
        here = camp.assign(UNITS[:1000])
        doc = camp.allocation()
    code = (
        "import sys; from layoutopt.campaign.campaign import Campaign\n"
        f"camp = Campaign.open({str(db)!r})\n"
        f"camp.assign({UNITS[:1000]!r}).to_csv(sys.stdout, index=False)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    there = pd.read_csv(pd.io.common.StringIO(out.stdout))
    assert there["index"].tolist() == here["index"].tolist()
    assert np.allclose(there["propensity"], here["propensity"], rtol=1e-12)
    assert doc["round"] == 2 and len(doc["history"]) == 1
    assert doc["hash"] == {"name": "layoutopt-sha256-53", "version": 1}
    json.dumps(doc)  # portable
    firsts = [1] * 500 + [2] * 500
    sdk = [sdk_assign(doc, u, f) for u, f in zip(UNITS[:1000], firsts, strict=True)]
    assert sdk == here["index"].tolist()


def test_holdout_serves_the_control(tmp_path):
    control = {"headline": "h1", "image": "i2", "reviews": "none"}
    with open_campaign(tmp_path / "c.db", holdout=0.2, control=control) as camp:
        first = camp.propose(k=6, seed=5)
        a = camp.assign(UNITS)
        assert camp.holdout == (0.2, control)
    c = SPACE.index(control)
    held = a["holdout"].to_numpy()
    assert within(np.array([held.mean()]), np.array([0.2]), len(UNITS))
    assert (a.loc[held, "index"] == c).all()
    weights = dict(zip(first.layouts["index"].astype(int), first.layouts["weight"], strict=True))
    expect = 0.8 * a["index"].map(weights).fillna(0.0) + 0.2 * (a["index"] == c)
    assert np.allclose(a["propensity"], expect, rtol=1e-12)


def test_assign_refuses_bad_input(tmp_path):
    with open_campaign(tmp_path / "c.db") as camp:
        with pytest.raises(ValueError, match="nothing proposed yet"):
            camp.assign(["a"])
        camp.propose(k=3, seed=5)
        with pytest.raises(ValueError, match="row 2, column 'unit': empty unit id"):
            camp.assign(["a", ""])
        with pytest.raises(ValueError, match=r"holdout must be a share in \[0, 1\)"):
            camp.set_holdout(1.0, {"headline": "h1", "image": "i1", "reviews": "none"})
        with pytest.raises(ValueError, match="a holdout needs a control layout"):
            camp.set_holdout(0.1)
    with pytest.raises(ValueError, match="control: no label for component"):
        Campaign.create(tmp_path / "d.db", SPACE, holdout=0.1, control={"headline": "h1"})


@pytest.mark.slow
def test_segment_spaces_assign_from_their_segments_allocation(tmp_path):
    space = LayoutSpace(dict(SPACE.to_dict()["components"]), segments={"member": ["prime", "no"]})
    design = initial_design(space, seed=0)
    data = pd.concat([served(design, 60, seed=1).assign(member=m) for m in ("prime", "no")])
    with Campaign.create(tmp_path / "c.db", space) as camp:
        camp.ingest(data)
        prop = camp.propose(k=4, seed=5)
        members = ["prime", "no"] * 1500
        a = camp.assign(UNITS[:3000], segment_columns={"member": members})
        with pytest.raises(ValueError, match="proposed per segment"):
            camp.assign(["x"])
        doc = camp.allocation()
    assert "member" in a.columns and a["member"].tolist() == members
    for m in ("prime", "no"):
        plan = prop.layouts[prop.layouts["member"] == m]
        w = dict(zip(plan["index"].astype(int), plan["weight"], strict=True))
        rows = a[a["member"] == m]
        assert set(rows["index"]) <= set(w)
        assert np.allclose(rows["propensity"], rows["index"].map(w), rtol=1e-12)
        assert abs(sum(x["weight"] for x in doc["layouts"] if x["member"] == m) - 1) < 1e-12
