"""An objective over several metrics and guardrails, against a float64 brute force.

Every metric's posterior is a set of synthetic draws; the oracle evaluates every allowed
layout in every draw with explicit numpy sums: the value ``sum_m w_m inv_link(eta_m)``, each
guardrail's share of draws with ``rate(x) <= (1 + d) rate(control)``, the per-draw best over
the layouts that pass. The engine sums eta in float32: values agree to 1e-6 relative (about
10 float32 ulps); a guardrail's share is a count of draws, exact unless a draw's rate sits
within float32 rounding of its limit (the tests check that none does within 1e-5).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import layoutopt as lo
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params, pair_list
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace

CARD = (3, 4, 2)
SHARES = np.array([0.7, 0.3])
LEVELS = {"clicks": -3.0, "signups": -5.0, "dismissals": -3.5}
CONTROL = {"c0": "v0", "c1": "v0", "c2": "v0"}


def _space(rules=(), segments=False):
    return LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(CARD)},
        forbidden=list(rules),
        segments={"member": ["prime", "guest"]} if segments else None,
    )


def _posterior(space, S, seed, level, segments=False) -> Posterior:
    rng = np.random.default_rng(seed)
    seg = ()
    if segments:
        seg = (
            jnp.asarray(rng.normal(0, 0.3, (S, 2)), jnp.float32),
            tuple(jnp.asarray(rng.normal(0, 0.3, (S, 2, n)), jnp.float32) for n in CARD),
        )
    params = Params(
        jnp.asarray(rng.normal(level, 0.2, S), jnp.float32),
        tuple(jnp.asarray(rng.normal(0, 0.3, (S, n)), jnp.float32) for n in CARD),
        tuple(
            jnp.asarray(rng.normal(0, 0.15, (S, CARD[k], CARD[j])), jnp.float32)
            for k, j in pair_list(len(CARD))
        ),
        *seg,
    )
    extra = {"segment_shares": SHARES} if segments else {}
    return Posterior(space=space, prior=PriorConfig(), params=params, method="nuts", **extra)


def _metrics(S=200, rules=(), segments=False):
    space = _space(rules, segments)
    return {m: _posterior(space, S, 11 + i, LEVELS[m], segments) for i, m in enumerate(LEVELS)}


def _codes(space):
    return np.concatenate([c for _, c in space.iter_chunks(4096, allowed_only=True)])


def _rate(post: Posterior, codes, segment=None) -> np.ndarray:
    """``(S, n)`` float64 rate (one segment ``g``, or the traffic mix) by explicit sums."""
    p = post.params
    groups = [(None, 1.0)] if p.segment_intercept is None else list(enumerate(SHARES))
    if segment is not None:
        groups = [(segment, 1.0)]
    out = 0.0
    for g, w in groups:
        eta = np.asarray(p.intercept, np.float64)[:, None]
        if g is not None:
            eta = eta + np.asarray(p.segment_intercept, np.float64)[:, g, None]
        for k in range(codes.shape[1]):
            eta = eta + np.asarray(p.main[k], np.float64)[:, codes[:, k]]
            if g is not None:
                eta = eta + np.asarray(p.segment_main[k], np.float64)[:, g, codes[:, k]]
        for i, (k, j) in enumerate(pair_list(codes.shape[1])):
            eta = eta + np.asarray(p.pair[i], np.float64)[:, codes[:, k], codes[:, j]]
        out = out + w / (1.0 + np.exp(-eta))
    return out


def _oracle(posts, weights, guards, codes, control, segment=None):
    value = sum(w * _rate(posts[m], codes, segment) for m, w in weights.items())
    passes = np.ones(len(codes), bool)
    shares = {}
    for m, (d, p) in guards.items():
        r = _rate(posts[m], codes, segment)
        c = _rate(posts[m], control[None], segment)
        limit = (1 + d) * c
        assert np.abs(r - limit).min() > 1e-5 * limit.min()  # no draw on the edge
        shares[m] = (r <= limit).mean(axis=0)
        passes &= shares[m] >= p
    return value, passes, shares


@pytest.mark.parametrize(
    ("rules", "segments", "segment"),
    [((), False, None), ([{"c0": "v1", "c1": "v2"}], False, None), ((), True, None)],
)
def test_weighted_value_and_guardrail_match_brute_force(rules, segments, segment):
    posts = _metrics(rules=rules, segments=segments)
    weights = {"clicks": 1.0, "signups": 30.0, "dismissals": -5.0}
    guards = {"dismissals": (0.10, 0.6)}
    vp = lo.ObjectivePosterior.create(
        posts,
        weights,
        {m: {"max_relative_increase": d, "probability": p} for m, (d, p) in guards.items()},
        control=CONTROL,
    )
    space = vp.space
    codes = _codes(space)
    control = np.asarray(space.encode(CONTROL))
    value, passes, shares = _oracle(posts, weights, guards, codes, control)
    assert 0 < passes.sum() < len(codes)  # the case tests something
    grid = lo.score_grid(vp, top=None)
    # the grid holds exactly the layouts that pass, with their mean value
    kept = {tuple(c) for c in grid.codes}
    assert kept == {tuple(c) for c in codes[passes]}
    order = {tuple(c): i for i, c in enumerate(codes)}
    at = np.asarray([order[tuple(c)] for c in grid.codes])
    np.testing.assert_allclose(grid.mean, value.mean(axis=0)[at], rtol=1e-6)
    # P(best) over the passing layouts only
    best = np.argmax(np.where(passes, value, -np.inf), axis=1)
    p_best = np.bincount(best, minlength=len(codes)) / len(value)
    np.testing.assert_allclose(grid.p_best, p_best[at], atol=0)
    # the pick: highest mean value among the passing layouts
    pick = lo.best_layout(vp)
    want = int(np.argmax(np.where(passes, value.mean(axis=0), -np.inf)))
    assert pick.layout == space.decode(codes[want])
    # expected loss of the pick, against the best passing layout of each draw
    loss = lo.expected_loss(vp, [pick.layout])
    el = (value[np.arange(len(value)), best] - value[:, want]).mean()
    assert loss.expected_loss[0] == pytest.approx(el, rel=1e-5, abs=1e-8)
    # the report and the count say which are excluded and why
    report = lo.guardrail_report(vp, codes)
    np.testing.assert_array_equal(report["passes"].to_numpy(), passes)
    np.testing.assert_allclose(report["p_dismissals"], shares["dismissals"], atol=1e-12)
    assert lo.count_excluded(vp) == int((~passes).sum())
    failing = report.loc[~passes, "excluded_by"]
    assert failing.str.contains(r"P\(dismissals <= 1.1 x control\) = 0\.\d+ < 0\.6").all()
    assert (report.loc[passes, "excluded_by"] == "").all()


def test_one_metric_with_weight_one_is_that_posterior():
    posts = _metrics(S=150)
    vp = lo.ObjectivePosterior.create(posts, "clicks")
    a = lo.score_grid(vp, top=None)
    b = lo.score_grid(posts["clicks"], top=None, method="draws")
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-6)
    np.testing.assert_allclose(a.p_best, b.p_best, atol=0)
    assert lo.best_layout(vp).layout == lo.best_layout(posts["clicks"], method="draws").layout


def test_a_weighted_objective_picks_by_value_not_by_clicks():
    posts = _metrics(S=200)
    space = posts["clicks"].space
    codes = _codes(space)
    weights = {"clicks": 1.0, "signups": 200.0}
    value = sum(w * _rate(posts[m], codes) for m, w in weights.items()).mean(axis=0)
    clicks = _rate(posts["clicks"], codes).mean(axis=0)
    assert np.argmax(value) != np.argmax(clicks)  # the seeds make the two disagree
    vp = lo.ObjectivePosterior.create(posts, weights)
    assert lo.best_layout(vp).layout == space.decode(codes[np.argmax(value)])


def test_proposals_and_decision_never_use_an_excluded_layout():
    posts = _metrics(S=200)
    vp = lo.ObjectivePosterior.create(
        posts,
        "clicks",
        {"dismissals": {"max_relative_increase": 0.0, "probability": 0.7}},
        control=CONTROL,
    )
    codes = _codes(vp.space)
    report = lo.guardrail_report(vp, codes)
    excluded = set(report.loc[~report["passes"], "index"])
    assert excluded and report.loc[report["index"] == 0, "passes"].item()  # control passes
    for strategy in ("thompson", "greedy"):
        batch = lo.propose(vp, k=30, strategy=strategy, seed=3)
        assert not excluded & set(batch["index"]), strategy
    sub = lo.propose(vp, k=30, seed=3, num_draws=50)
    assert not excluded & set(sub["index"])
    d = lo.decision(vp)
    assert d.leader.index not in excluded
    # the best by clicks alone fails the guardrail here: the decision names it and why
    free = lo.best_layout(posts["clicks"], method="draws")
    assert free.index in excluded
    assert f"the best without them, layout {free.index}, fails P(dismissals" in d.excluded
    assert f"guardrails exclude {len(excluded)} of {len(codes)} layouts" in d.line()


def test_one_segment_folds_every_metric():
    posts = _metrics(S=120, segments=True)
    vp = lo.ObjectivePosterior.create(posts, {"clicks": 1.0, "signups": 10.0})
    codes = _codes(vp.space)
    value = _rate(posts["clicks"], codes, 1) + 10.0 * _rate(posts["signups"], codes, 1)
    grid = lo.score_grid(vp, top=None, segment={"member": "guest"})
    np.testing.assert_allclose(grid.mean, value.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": {"revenue": 1}}, r"metric 'revenue' has no fitted posterior"),
        ({"objective": {"clicks": 0}}, r"every weight is 0"),
        ({"objective": {"clicks": float("nan")}}, r"weight of 'clicks' must be a finite"),
        ({"objective": 3}, r"objective must be a metric name"),
        (
            {"guardrails": {"dismissals": {"max_relative_increase": 0.1}}},
            r"guardrails are relative to a control layout",
        ),
        (
            {"guardrails": {"dismissals": {"max_increase": 0.1}}, "control": CONTROL},
            r"guardrail 'dismissals': unknown keys \['max_increase'\]",
        ),
        (
            {"guardrails": {"dismissals": {"probability": 1.5}}, "control": CONTROL},
            r"probability must lie in \(0, 1\)",
        ),
        ({"control": {"c0": "v9", "c1": "v0", "c2": "v0"}}, r"v9"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, message):
    posts = _metrics(S=20)
    with pytest.raises(ValueError, match=message):
        lo.ObjectivePosterior.create(posts, **{"objective": "clicks", **kwargs})


def test_metrics_with_different_draw_counts_are_refused():
    posts = _metrics(S=20)
    posts["signups"] = posts["signups"].subsample(np.arange(10))
    with pytest.raises(ValueError, match=r"'signups' has 10 draws, 'clicks' has 20"):
        lo.ObjectivePosterior.create(posts, {"clicks": 1, "signups": 1})
