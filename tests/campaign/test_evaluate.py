"""Off-policy estimators (``layoutopt.campaign.evaluate``) validated by simulation.

A world with known CTRs is logged under a known allocation; the estimators' intervals must
cover the target allocation's true CTR near their nominal rate over many logs. With 200 logs
a 90% coverage has Monte Carlo sd sqrt(0.9 * 0.1 / 200) = 0.021, so the accepted band
[0.83, 0.96] is about 3 sd wide on either side.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from layoutopt.campaign.evaluate import LoggedRows, evaluate_policy

CARD = (3, 3, 3)
LAYOUTS = np.array(list(itertools.product(*(range(n) for n in CARD))))


def _world(seed: int, pairwise: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if not pairwise:  # additive in the CTR itself, the slate estimator's assumption
        return 0.08 + sum(rng.uniform(-0.02, 0.02, n)[LAYOUTS[:, k]] for k, n in enumerate(CARD))
    eta = -2.5 + sum(rng.normal(0, 0.4, n)[LAYOUTS[:, k]] for k, n in enumerate(CARD))
    if pairwise:
        for k, l in itertools.combinations(range(len(CARD)), 2):
            eta = eta + rng.normal(0, 0.3, (CARD[k], CARD[l]))[LAYOUTS[:, k], LAYOUTS[:, l]]
    return 1.0 / (1.0 + np.exp(-eta))


def _log(ctr, logging, n, rng):
    counts = rng.multinomial(n, logging)
    clicks = rng.binomial(counts, ctr)
    keep = counts > 0
    return counts[keep], clicks[keep], keep


def _rows(ctr, logging, target, n, rng, model=None) -> LoggedRows:
    counts, clicks, keep = _log(ctr, logging, n, rng)
    # uniform logging over a product space is per-component randomisation: mu_k = 1/3
    marg = np.stack([np.bincount(LAYOUTS[:, k], target, CARD[k]) for k in range(len(CARD))])
    ratio = sum(marg[k][LAYOUTS[:, k]] * CARD[k] for k in range(len(CARD))) - (len(CARD) - 1)
    return LoggedRows(
        counts,
        clicks,
        logging[keep],
        target[keep],
        None if model is None else model[keep],
        None if model is None else float(target @ model),
        ratio[keep],
    )


def test_intervals_cover_the_true_value_and_dr_beats_ips_with_a_right_model():
    reps, n = 200, 20_000
    rng = np.random.default_rng(0)
    hits, errors = {}, {}
    for rep in range(reps):
        ctr = _world(rep, pairwise=True)
        logging = np.full(len(LAYOUTS), 1 / len(LAYOUTS))
        target = np.zeros(len(LAYOUTS))
        target[np.argsort(ctr)[-3:]] = [0.2, 0.3, 0.5]
        truth = float(target @ ctr)
        rows = _rows(ctr, logging, target, n, rng, model=ctr)
        for est in evaluate_policy(rows, level=0.9, num_bootstrap=400, seed=rep):
            if est.estimator == "slate":
                continue  # biased on a pairwise world; checked on an additive one below
            hits.setdefault(est.estimator, []).append(est.lower <= truth <= est.upper)
            errors.setdefault(est.estimator, []).append(abs(est.value - truth))
    for name in ("ips", "snips", "dr"):
        assert 0.83 <= np.mean(hits[name]) <= 0.96, (name, np.mean(hits[name]))
    # With the model right DR keeps only the clicks' own noise, not that of which layouts
    # were logged how often: smaller errors, paired over the same logs (the gain is modest
    # at CTRs near 10%, where the binomial noise of the clicks dominates).
    gain = np.asarray(errors["ips"]) - np.asarray(errors["dr"])
    assert gain.mean() > 2 * gain.std() / np.sqrt(reps)


def test_slate_estimator_covers_on_an_additive_world_and_needs_fewer_impressions():
    reps, n = 200, 5_000
    rng = np.random.default_rng(1)
    hits, err_slate, err_ips = [], [], []
    for rep in range(reps):
        ctr = _world(1000 + rep, pairwise=False)
        logging = np.full(len(LAYOUTS), 1 / len(LAYOUTS))
        target = np.zeros(len(LAYOUTS))
        target[np.argmax(ctr)] = 1.0
        truth = float(target @ ctr)
        est = {e.estimator: e for e in evaluate_policy(
            _rows(ctr, logging, target, n, rng), num_bootstrap=400, seed=rep)}  # fmt: skip
        hits.append(est["slate"].lower <= truth <= est["slate"].upper)
        err_slate.append(abs(est["slate"].value - truth))
        err_ips.append(abs(est["ips"].value - truth))
    assert 0.83 <= np.mean(hits) <= 0.96, np.mean(hits)
    assert np.mean(err_slate) < np.mean(err_ips)


def test_refuses_bad_rows():
    ok = dict(impressions=[10], clicks=[1], propensity=[0.5], target=[1.0])
    evaluate_policy(LoggedRows(**ok), seed=0)
    for change, match in (
        ({"propensity": [0.0]}, "propensities must lie in"),
        ({"propensity": [1.5]}, "propensities must lie in"),
        ({"clicks": [11]}, "between 0 and the impressions"),
        ({"impressions": [0], "clicks": [0]}, "needs logged impressions"),
        ({"target": [1.0, 0.0]}, "one impressions"),
    ):
        with pytest.raises(ValueError, match=match):
            evaluate_policy(LoggedRows(**{**ok, **change}), seed=0)
