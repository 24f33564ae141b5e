"""Information-directed sampling: the weights against a brute-force information ratio, the
proposals against an independent computation from explicit draws, and the policy in the
driver."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import numpy_eta
from scipy.special import expit
from test_propose import make_space, random_posterior

import layoutopt as lo
from layoutopt.decide import policies
from layoutopt.decide.ids import ids_weights
from layoutopt.decide.proposals import propose
from layoutopt.sim.simulate import SyntheticWorld, run_campaign


def _brute_ratio(values, winner, best_values):
    """The smallest information ratio over pairs and a fine grid of mixing weights, by
    loops (no vectorised shortcut shared with the library)."""
    S, n = values.shape
    mean = values.mean(axis=0)
    regret = best_values.mean() - mean
    gain = np.zeros(n)
    for a in set(winner.tolist()):
        mask = winner == a
        gain += mask.mean() * (values[mask].mean(axis=0) - mean) ** 2
    qs = np.linspace(0.0, 1.0, 100_001)
    best = np.inf
    for i in range(n):
        for j in range(n):
            num = (qs * regret[i] + (1 - qs) * regret[j]) ** 2
            den = qs * gain[i] + (1 - qs) * gain[j]
            best = min(best, float(np.min(num / den)))
    return best, regret, gain


def _ratio(w, regret, gain):
    return float(np.dot(w, regret) ** 2 / np.dot(w, gain))


@pytest.mark.parametrize("seed", range(6))
def test_weights_reach_the_smallest_information_ratio(seed):
    rng = np.random.default_rng(seed)
    S, n = 300, int(rng.integers(2, 7))
    values = rng.normal(0.1, 0.02, (S, n)) + rng.normal(0, 0.01, n)
    winner = np.argmax(values, axis=1)
    keep = np.unique(winner)  # candidates are the layouts some draw calls best
    values, winner = values[:, keep], np.searchsorted(keep, winner)
    best_values = values[np.arange(S), winner]
    w = ids_weights(values, winner, best_values)
    assert w.sum() == pytest.approx(1.0) and np.count_nonzero(w) <= 2 and (w >= 0).all()
    brute, regret, gain = _brute_ratio(values, winner, best_values)
    # the grid has spacing 1e-5: the brute force is at most that much above the optimum
    assert _ratio(w, regret, gain) <= brute * (1 + 1e-6)
    assert _ratio(w, regret, gain) >= brute * (1 - 1e-3)


def test_a_unanimous_posterior_plays_its_best():
    values = np.array([[0.2, 0.1], [0.21, 0.1]])
    w = ids_weights(values, np.array([0, 0]), values[:, 0])
    np.testing.assert_array_equal(w, [1.0, 0.0])
    with pytest.raises(ValueError, match="one of the 2 candidates"):
        ids_weights(values, np.array([0, 2]), values[:, 0])


def test_proposals_match_an_independent_computation_from_the_draws():
    space = make_space((3, 2, 3))
    post = random_posterior(space, num_draws=400, seed=3, main_scale=0.4)
    got = propose(post, k=8, strategy="ids", seed=0, explore=False)
    assert 1 <= len(got) <= 2 and got["weight"].sum() == pytest.approx(1.0)
    codes = np.concatenate([c for _, c in space.iter_chunks()], axis=0)
    ctr = expit(numpy_eta(post.params, codes))  # (S, N), logit link
    winner_all = np.argmax(ctr, axis=1)
    cand = np.unique(winner_all)
    values, winner = ctr[:, cand], np.searchsorted(cand, winner_all)
    w = ids_weights(values, winner, values[np.arange(len(winner)), winner])
    want = {int(space.indices(codes[cand[i]][None])[0]): w[i] for i in np.flatnonzero(w)}
    assert dict(zip(got["index"].astype(int), got["weight"], strict=True)) == pytest.approx(want)


def test_ids_spends_less_on_known_worse_layouts_than_thompson():
    # a posterior sure that v0 of c0 is best by a wide margin in most draws, unsure in a few:
    # Thompson gives the doubtful layouts their P(best); IDS gives the likely best more
    space = make_space((3, 2, 3))
    post = random_posterior(space, num_draws=400, seed=5, main_scale=0.3)
    main = (post.params.main[0].copy(),) + tuple(post.params.main[1:])
    main[0][:, 0] += 0.8
    post = post.__class__(
        space=space, prior=post.prior, params=post.params._replace(main=main), method="laplace"
    )
    ts = propose(post, k=18, strategy="thompson", seed=0, explore=False)
    ids = propose(post, k=18, strategy="ids", seed=0, explore=False)
    codes = np.concatenate([c for _, c in space.iter_chunks()], axis=0)
    ctr = expit(numpy_eta(post.params, codes))
    best = ctr.max(axis=1).mean()
    regret = dict(zip(space.indices(codes).tolist(), best - ctr.mean(axis=0), strict=True))

    def expected(df):
        return sum(w * regret[int(i)] for i, w in zip(df["index"], df["weight"], strict=True))

    assert expected(ids) < expected(ts)


@pytest.mark.slow
def test_the_policy_runs_in_the_driver_and_serves_at_most_two_layouts():
    space = make_space((4, 3, 3))
    world = SyntheticWorld.random(space, seed=1, main_scale=0.4)
    res = run_campaign(
        world, policy=policies.ids(num_samples=200), budget=6_000, batch_size=1_000, seed=0
    )
    frame = res.to_pandas()
    assert len(frame) == 6 and np.isfinite(frame["local_regret"]).all()
    # after the round-0 design, each round adds at most the two layouts it serves
    assert (np.diff(frame["num_tested"]) <= 2).all()
    assert frame["num_tested"].iloc[0] == len(lo.initial_design(space, seed=0))


@pytest.mark.parametrize("share", [0.25, 0.6])
def test_a_thompson_share_mixes_ids_with_p_best(share):
    space = make_space((3, 2, 3))
    post = random_posterior(space, num_draws=400, seed=3, main_scale=0.4)
    k = space.size  # no top-k cut: the weights are the mixture itself
    ids = propose(post, k=k, strategy="ids", seed=0, explore=False)
    ts = propose(post, k=k, strategy="thompson", seed=0, explore=False)
    got = propose(post, k=k, strategy="ids", seed=0, explore=False, thompson_share=share)

    def as_dict(df):
        return dict(zip(df["index"].astype(int), df["weight"], strict=True))

    want = {i: share * w for i, w in as_dict(ts).items()}
    for i, w in as_dict(ids).items():
        want[i] = want.get(i, 0.0) + (1 - share) * w
    assert as_dict(got) == pytest.approx(want, abs=1e-12)
    # every layout some draw calls best keeps traffic (IDS alone serves at most two)
    assert len(got) == len(ts) > 2


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_a_thompson_share_outside_0_1_is_refused(share):
    post = random_posterior(make_space((3, 2)), num_draws=16, seed=0)
    with pytest.raises(ValueError, match=r"thompson_share must lie in \[0, 1\)"):
        propose(post, k=4, strategy="ids", seed=0, explore=False, thompson_share=share)
    with pytest.raises(ValueError, match=r"thompson_share must lie in \[0, 1\)"):
        policies.ids(thompson_share=share)
