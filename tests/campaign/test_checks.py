"""The sample-ratio check: quiet on traffic drawn as planned, loud on a skewed round."""

from __future__ import annotations

import numpy as np
import pytest

from layoutopt.campaign.checks import SRM_ALPHA, sample_ratio_check


def test_quiet_when_traffic_follows_the_plan():
    # Under the null the p-value is uniform: over 2,000 planned rounds about alpha * 2,000 =
    # 2 flags are expected; more than 10 (a Poisson(2) tail of 5e-5) would mean a broken test.
    rng = np.random.default_rng(0)
    w = np.array([0.5, 0.25, 0.15, 0.1])
    flags = 0
    pvals = []
    for _ in range(2000):
        r = sample_ratio_check(rng.multinomial(10_000, w), w)
        flags += r.mismatch
        pvals.append(r.p_value)
    assert flags <= 10
    # uniform p-values: the share below 0.1 is 0.1 +- 4 sd (sd = sqrt(0.09 / 2000))
    assert abs(np.mean(np.asarray(pvals) < 0.1) - 0.1) < 4 * np.sqrt(0.09 / 2000)


def test_flags_a_skewed_round_and_names_the_worst_layout():
    w = np.array([0.5, 0.25, 0.15, 0.1])
    served = np.array([5000, 2500, 1200, 1300])  # layout 2 starved, 3 inflated by 300 each
    r = sample_ratio_check(served, w)
    assert r.mismatch and r.p_value < SRM_ALPHA and r.worst in (2, 3)
    assert r.dof == 3 and np.isclose(r.expected.sum(), served.sum())
    r = sample_ratio_check([10, 0, 3], [0.5, 0.5, 0.0])
    assert r.mismatch and r.p_value == 0.0 and r.worst == 2
    r = sample_ratio_check([0, 0], [0.5, 0.5])
    assert not r.mismatch and r.p_value == 1.0


def test_refuses_inconsistent_input():
    for obs, w in (([1, 2], [1.0]), ([-1, 2], [0.5, 0.5]), ([1, 2], [0.0, 0.0])):
        with pytest.raises(ValueError, match="one non-negative count and weight"):
            sample_ratio_check(obs, w)
