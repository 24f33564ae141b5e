""" "No evidence yet": the one check (chance level, scales at their floor), BestLayout's line,
and propose exploring when the posterior cannot tell layouts apart."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import random_draws

import layoutopt as lo
from layoutopt.infer.posterior import Posterior
from layoutopt.model.priors import PriorConfig
from layoutopt.score.evidence import (
    NO_EVIDENCE_FACTOR,
    chance_p_best,
    evidence_level,
    no_evidence,
)

SPACE = lo.LayoutSpace({"a": list("pqrs"), "b": list("xyz"), "c": ["u", "v"]})  # 24 layouts


def test_chance_level_and_the_line():
    assert chance_p_best(1, 1000) == 1.0
    n, s = 24, 1000
    assert chance_p_best(n, s) == pytest.approx(1 / n + math.sqrt(2 * math.log(n) / (s * n)))
    assert chance_p_best(10**6, 1000) == pytest.approx(1e-3)  # never below one draw
    level = NO_EVIDENCE_FACTOR * chance_p_best(n, s)
    assert no_evidence(level, n, s).startswith("no evidence yet: the leader's P(best)")
    assert no_evidence(level + 1e-9, n, s) is None
    assert no_evidence(0.9, n, s, {"scales_at_floor": True}).startswith(
        "no evidence yet: every learned effect scale sits at its floor"
    )
    assert no_evidence(0.01, 1, s) is None  # one layout: nothing to tell apart
    # two layouts: twice chance (~1.04) would leave no room; the level is (1 + chance) / 2
    assert evidence_level(2, s) == pytest.approx((1 + chance_p_best(2, s)) / 2)
    assert no_evidence(0.9, 2, s) is None and no_evidence(0.7, 2, s) is not None


def _posterior(main_scale: float, seed: int = 0) -> Posterior:
    """Draws whose main effects are iid N(0, main_scale) per draw: a flat posterior for a
    small scale (every layout equally likely to be any draw's best), a confident one when
    draws share a large fixed effect."""
    params = random_draws(SPACE.cardinalities, 1000, seed, -3.0, main_scale=main_scale)
    return Posterior(space=SPACE, prior=PriorConfig(), params=params, method="nuts")


def test_a_flat_posterior_has_no_evidence_and_proposals_explore():
    post = _posterior(0.3)
    # Each draw's argmax is uniform over the 24 layouts, so the leader's P(best) is the
    # largest of 24 Multinomial(1000, 1/24) shares: ~0.06, under 2 x chance = 0.15 with
    # room (the sd of one share is 0.006); fixed seed.
    best = lo.best_layout(post)
    assert best.no_evidence is not None and best.p_best < 0.1
    for strategy in ("thompson", "top_two", "greedy", "ucb"):
        batch = lo.propose(post, k=5, strategy=strategy, seed=1)
        assert batch.attrs["no_evidence"].startswith("no evidence yet")
        assert len(batch) == 5 and np.allclose(batch["weight"], 0.2)
        assert batch["index"].is_unique and SPACE.allowed_mask(SPACE.codes(batch["index"])).all()
    again = lo.propose(post, k=5, strategy="greedy", seed=1)
    assert (
        again["index"].tolist()
        == lo.propose(post, k=5, strategy="greedy", seed=1)["index"].tolist()
    )  # seeded
    excluded = lo.propose(post, k=30, seed=2, exclude=list(range(20)))
    assert sorted(excluded["index"]) == [20, 21, 22, 23]  # exploration respects exclude


def test_a_confident_posterior_names_its_best_and_exploits():
    params = random_draws(SPACE.cardinalities, 1000, 0, -3.0, main_scale=0.01)
    card = SPACE.cardinalities
    main = tuple(m + np.eye(n, dtype=np.float32)[0] for m, n in zip(params.main, card, strict=True))
    params = params._replace(main=main)  # variant 0 of every component ahead by 1 logit
    post = Posterior(space=SPACE, prior=PriorConfig(), params=params, method="nuts")
    best = lo.best_layout(post)
    assert best.no_evidence is None and best.index == 0 and best.p_best > 0.9
    batch = lo.propose(post, k=5, seed=1)
    assert "no_evidence" not in batch.attrs and batch["index"].iloc[0] == 0


def test_laplace_scales_at_their_floor_say_no_evidence():
    # every layout 200 impressions and 0 clicks: nothing separates the variants
    codes = SPACE.codes(np.arange(SPACE.size))
    obs = lo.Observations.from_codes(SPACE, codes, np.full(SPACE.size, 200), np.zeros(SPACE.size))
    post = lo.fit(SPACE, obs, num_samples=200)
    assert post.diagnostics["scales_at_floor"] is True
    assert "sits at its floor" in lo.best_layout(post).no_evidence


def test_the_stopping_rule_never_ships_without_evidence():
    # main and pair effects of sd 0.001 per draw: every layout within a few 0.1% of every
    # other, so the value remaining is far under the rule's 50% -- the thresholds alone
    # would stop
    params = random_draws(SPACE.cardinalities, 1000, 0, -3.0, 0.001, 0.001, 0.3)
    post = Posterior(space=SPACE, prior=PriorConfig(), params=params, method="nuts")
    rule = lo.StopRule(max_value_remaining=0.5)
    d = lo.decision(post, rule)
    assert d.value_remaining < 0.5 and d.leader.no_evidence is not None
    assert not d.stop and d.reason.startswith("no evidence yet, whatever the thresholds say")
    # with evidence (variant p of component a better by 1.0 in every draw) it stops
    main = (params.main[0].at[:, 0].add(1.0),) + tuple(params.main[1:])
    sure = Posterior(
        space=SPACE, prior=PriorConfig(), params=params._replace(main=main), method="nuts"
    )
    confident = lo.decision(sure, rule)
    assert confident.leader.no_evidence is None and confident.stop
