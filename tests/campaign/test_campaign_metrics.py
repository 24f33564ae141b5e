"""A campaign with an objective and guardrails: settings stored, counts ingested, metrics fitted,
the pick and the decision made on the value over the layouts that pass."""

import html

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo

SPACE = lo.LayoutSpace({"h": ["a", "b", "c"], "i": ["x", "y"], "r": ["on", "off"]})
CONTROL = {"h": "a", "i": "x", "r": "off"}
GUARD = {"dismissals": {"max_relative_increase": 0.10, "probability": 0.9}}


def _results(seed=0, n=4000):
    """Every layout served; h=c lifts clicks most but doubles dismissals."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(SPACE.size):
        x = SPACE.layout(i)
        ctr = 0.04 + 0.03 * (x["h"] == "c") + 0.01 * (x["h"] == "b")
        dis = 0.03 * (2.0 if x["h"] == "c" else 1.0)
        su = 0.004 + 0.004 * (x["i"] == "y")
        rows.append(
            {
                **x,
                "impressions": n,
                "clicks": rng.binomial(n, ctr),
                "signups": rng.binomial(n, su),
                "dismissals": rng.binomial(n, dis),
            }
        )
    return pd.DataFrame(rows)


def test_objective_campaign_picks_and_decides_under_the_guardrail(tmp_path):
    db = tmp_path / "c.db"
    camp = lo.Campaign.create(db, SPACE, control=CONTROL, objective="clicks", guardrails=GUARD)
    df = _results().drop(columns="signups")
    camp.ingest(df)
    obs = camp.metric_observations("dismissals")
    assert int(obs.clicks.sum()) == int(df["dismissals"].sum())
    camp.fit(seed=0, num_samples=200)
    best = camp.best()
    assert best.layout["h"] != "c"  # h=c has the most clicks and fails the guardrail
    d = camp.decision()
    assert d.leader.layout["h"] != "c"
    assert (
        "guardrails exclude" in d.excluded and "fails P(dismissals <= 1.1 x control)" in d.excluded
    )
    # proposals are made on the objective: never a layout that fails the guardrail
    first = camp.propose(k=6, seed=1)
    assert len(first.layouts) and "c" not in set(first.layouts["h"])
    camp.ingest(_results(seed=3).drop(columns="signups"))
    second = camp.propose(k=6, seed=2)  # fits first (new data): clicks, then dismissals
    assert second.refit is not None
    assert len(second.layouts) and "c" not in set(second.layouts["h"])
    assert camp.best().layout["h"] != "c"
    # a stopping decision recorded for the new fit too, with the exclusions
    assert "guardrails exclude" in camp.latest_decision().excluded
    camp.close()
    again = lo.Campaign.open(db)
    assert again.objective() == lo.Objective.of("clicks")
    assert again.guardrails() == (lo.Guardrail("dismissals", 0.10, 0.9),)
    assert again.latest_decision().excluded == again.exclusions() != ""
    page = again.report(tmp_path / "r.html").read_text()  # the report says it too
    assert html.escape(again.exclusions()) in page and "guardrails: " in page
    assert again.metric_columns() == ("dismissals",)
    # a batch without the guarded metric's column is refused whole
    before = len(again.store.batches(again.campaign_id))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['dismissals'\]"):
        again.ingest(_results(seed=1).drop(columns=["dismissals", "signups"]))
    assert len(again.store.batches(again.campaign_id)) == before
    again.close()


def test_a_weighted_objective_is_set_later_and_needs_a_refit(tmp_path):
    camp = lo.Campaign.create(tmp_path / "w.db", SPACE)
    camp.set_objective({"clicks": 1, "signups": 30})
    assert camp.metric_columns() == ("signups",)
    camp.ingest(_results(seed=2).drop(columns="dismissals"))
    camp.fit(seed=1, num_samples=200)
    # value = clicks + 30 signups: i=y (double sign-ups) wins although clicks ignore i
    assert camp.best().layout["i"] == "y"
    # new settings name a metric this fit did not fit: refit first
    camp.set_holdout(0.0, CONTROL)
    camp.set_objective(guardrails=GUARD)
    with pytest.raises(ValueError, match=r"has no fit of \['dismissals'\].*fit` again"):
        camp.scored_posterior()
    camp.close()


def test_every_metric_is_fitted_with_the_fits_prior_and_options(tmp_path):
    """The additive model asked of a campaign fit is every metric's model, and a refit by
    propose keeps it (the further metrics were fitted with defaults before)."""
    camp = lo.Campaign.create(tmp_path / "p.db", SPACE, objective={"clicks": 1, "signups": 30})
    camp.ingest(_results(seed=2).drop(columns="dismissals"))
    options = lo.LaplaceOptions(max_iter=2)  # seen in every metric's iteration count
    with pytest.warns(lo.FitWarning, match="did not converge in 2 iterations"):
        camp.fit(seed=1, num_samples=50, prior=lo.PriorConfig(pairwise=False), options=options)
    posts = dict(camp.scored_posterior().posteriors)
    assert set(posts) == {"clicks", "signups"}
    assert all(p.params.pair == () and not p.prior.pairwise for p in posts.values())
    assert posts["signups"].diagnostics["iterations"] == 2
    camp.ingest(_results(seed=5).drop(columns="dismissals"))
    with pytest.warns(lo.FitWarning):
        camp.propose(k=4, seed=2)  # refits: clicks and sign-ups, both additive still
    posts = dict(camp.scored_posterior().posteriors)
    assert all(p.params.pair == () for p in posts.values())
    camp.close()


def test_guardrails_need_a_control(tmp_path):
    camp = lo.Campaign.create(tmp_path / "g.db", SPACE)
    with pytest.raises(ValueError, match="guardrails are relative to a control layout"):
        camp.set_objective(guardrails=GUARD)
    with pytest.raises(ValueError, match=r"unknown keys \['max'\]"):
        camp.set_objective(guardrails={"dismissals": {"max": 1}})
    camp.close()
