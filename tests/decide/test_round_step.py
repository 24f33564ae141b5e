"""The driver's one loop body (round keys, round_step, resume) and the model policies' one
default prior."""

from __future__ import annotations

import numpy as np
import pytest

from layoutopt.data.observations import Observations
from layoutopt.decide import policies
from layoutopt.decide.driver import resume, round_keys, round_step, setup_keys
from layoutopt.decide.interface import Allocation, Policy, no_info
from layoutopt.decide.model_policy import same_rows
from layoutopt.infer import default_prior
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.util.seeds import seed_of

SPACE = LayoutSpace({"h": ["h0", "h1", "h2"], "i": ["i0", "i1"]})


def _obs(clicks):
    codes = SPACE.codes(np.arange(SPACE.size))
    return Observations.from_codes(SPACE, codes, np.full(SPACE.size, 400), np.asarray(clicks))


def test_round_keys_depend_on_seed_and_round_only():
    a, b = round_keys(3, 2), round_keys(3, 2)
    assert [seed_of(k) for k in a] == [seed_of(k) for k in b]
    assert len({seed_of(k) for k in (*a, *round_keys(3, 1), *round_keys(4, 2))}) == 9
    assert seed_of(setup_keys(3)[0]) != seed_of(setup_keys(3)[1])
    with pytest.raises(ValueError, match="seed"):
        round_keys(-1, 0)


@pytest.mark.parametrize(("link", "pairwise"), [("logit", True), ("probit", False)])
def test_model_policies_use_fits_default_prior_fixed_at_their_first_fit(link, pairwise):
    first, later = _obs([40, 8, 20, 12, 30, 4]), _obs([80, 8, 60, 12, 90, 4])
    want = default_prior(first, PriorConfig(link=link, pairwise=pairwise))
    assert want.base_rate == pytest.approx(114 / 2400)  # the pooled CTR, as fit's default
    policy = policies.thompson(k=2, link=link, pairwise=pairwise, num_samples=100)
    state = policy.init(SPACE, setup_keys(0)[0])
    state, _, _ = round_step(policy, state, first, round_keys(0, 0).step)
    assert state.prior == want
    state, _, _ = round_step(policy, state, later, round_keys(0, 1).step)
    assert state.prior == want  # fixed: the jitted fit compiles once per campaign
    # a stored campaign resumes with the same prior from its first round's data
    resumed = resume(policy, SPACE, seed=0, first=first, rounds=2)
    assert resumed.prior == want and resumed.round == 2


def test_a_policy_prior_keeps_every_field_and_takes_its_base_rate_from_the_data():
    first = _obs([40, 8, 20, 12, 30, 4])
    policy = policies.thompson(k=2, prior=PriorConfig(pairwise=False), num_samples=100)
    assert policy.name == "additive/thompson"  # the prior's pairwise flag, not a default's
    state = policy.init(SPACE, setup_keys(0)[0])
    state, _, _ = round_step(policy, state, first, round_keys(0, 0).step)
    assert state.prior == PriorConfig(base_rate=114 / 2400, pairwise=False)
    fixed = PriorConfig(base_rate=0.2, link="probit")
    state = policies.greedy(k=2, prior=fixed, num_samples=100).init(SPACE, setup_keys(0)[0])
    state, _, _ = round_step(policies.greedy(k=2, prior=fixed, num_samples=100), state, first,
                             round_keys(0, 0).step)  # fmt: skip
    assert state.prior == fixed  # a base rate given is kept
    with pytest.raises(ValueError, match="pairwise=True contradicts the prior's pairwise=False"):
        policies.thompson(k=2, prior=PriorConfig(pairwise=False), pairwise=True)


def test_a_step_on_the_observations_of_its_last_fit_reuses_that_fit():
    obs = _obs([40, 8, 20, 12, 30, 4])
    policy = policies.thompson(k=2, num_samples=100)
    state = policy.init(SPACE, setup_keys(0)[0])
    state, _, info = round_step(policy, state, obs, round_keys(0, 0).step)
    copy = _obs([40, 8, 20, 12, 30, 4])
    assert same_rows(obs, copy) and not same_rows(obs, _obs([40, 8, 20, 12, 30, 5]))
    _, _, again = round_step(policy, state, copy, round_keys(0, 1).step)
    assert again.posterior is info.posterior
    _, _, fresh = round_step(policy, state, _obs([41, 8, 20, 12, 30, 4]), round_keys(0, 1).step)
    assert fresh.posterior is not info.posterior


def test_round_step_refuses_an_allocation_without_a_positive_weight():
    codes = SPACE.codes(np.arange(2))
    for weights in ([0.0, 0.0], [np.nan, 1.0], [1.0]):
        bad = Policy(
            lambda space, key: None,
            lambda s, o, k, w=weights: (s, Allocation(codes, np.asarray(w), "round"), no_info()),
            "bad",
        )
        with pytest.raises(ValueError, match="policy 'bad': an allocation needs at least one"):
            round_step(bad, None, None, round_keys(0, 0).step)
