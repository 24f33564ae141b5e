"""Properties of the hash assignment over inputs a table cannot enumerate (hypothesis):
thresholds whose exact probabilities sum to one, cohort propensities that are a distribution
over the round's layouts, assignments that are deterministic, sticky and carry the exact
probability of their layout, and hashes that another process reproduces bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from layoutopt.campaign.assign import (  # noqa: E402
    SCALE,
    RoundAllocation,
    assign_units,
    cohort_propensities,
    threshold_probabilities,
    thresholds,
    unit_hash,
)

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
UNITS = st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=30, unique=True)
WEIGHTS = st.lists(
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=12
).filter(lambda w: sum(w) > 0)


@st.composite
def histories(draw):
    """Two to four rounds of allocations over layouts 0..19, each a subset with weights."""
    rounds = []
    for r in range(1, draw(st.integers(2, 4)) + 1):
        index = draw(st.lists(st.integers(0, 19), min_size=1, max_size=8, unique=True))
        w = draw(st.lists(st.floats(0.01, 10), min_size=len(index), max_size=len(index)))
        rounds.append(RoundAllocation(r, np.array(index, np.int64), thresholds(w)))
    return rounds


@SETTINGS
@given(WEIGHTS)
def test_thresholds_are_exact_probabilities_of_the_weights(w):
    t = thresholds(w)
    assert t[-1] == SCALE and np.all(np.diff(t) >= 0)
    p = threshold_probabilities(t)
    assert int(np.diff(np.concatenate([[0], t])).sum()) == SCALE  # exactly one, in integers
    # each probability is its weight's share to within the rounding of two thresholds
    np.testing.assert_allclose(p, np.asarray(w) / sum(w), atol=len(w) * 2.0**-52)


@SETTINGS
@given(histories())
def test_cohort_propensities_are_a_distribution_over_the_last_round(history):
    p = cohort_propensities(history)
    assert set(p) == set(history[-1].index.tolist())
    assert all(v >= 0 for v in p.values())
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(UNITS, histories(), st.sampled_from([0.0, 0.25]), st.text(max_size=8))
def test_assignments_are_deterministic_sticky_and_carry_their_probability(
    units, history, holdout, salt
):
    control = int(history[-1].index[0]) if holdout else None
    a = assign_units(salt, units, [history] * len(units), holdout, control)
    again = assign_units(salt, list(units), [list(history)] * len(units), holdout, control)
    for x, y in zip(a, again, strict=True):
        np.testing.assert_array_equal(x, y)
    p = cohort_propensities(history)
    last = set(history[-1].index.tolist())
    for i in range(len(units)):
        layout = int(a.index[i])
        assert layout in last
        expected = (1 - holdout) * p.get(layout, 0.0) + (holdout if layout == control else 0.0)
        assert a.propensity[i] == pytest.approx(expected, abs=1e-15)
        assert 0 < a.propensity[i] <= 1
    # sticky: one round less, and the unit keeps that layout unless it left the allocation
    before = assign_units(salt, units, [history[:-1]] * len(units))
    free = assign_units(salt, units, [history] * len(units))
    kept = np.isin(before.index, history[-1].index)
    np.testing.assert_array_equal(free.index[kept], before.index[kept])
    np.testing.assert_array_equal(free.redrawn, ~kept)


def _random_ids(n: int, seed: int) -> list[str]:
    """Unit ids of any unicode (surrogates excluded), empty and long ones among them."""
    rng = np.random.default_rng(seed)
    points = [c for c in range(0x30000) if not 0xD800 <= c < 0xE000]
    return [
        "".join(chr(points[i]) for i in rng.integers(0, len(points), rng.integers(0, 40)))
        for _ in range(n)
    ]


def test_another_process_computes_the_same_hashes():
    # a fresh interpreter (its own str hash seed) gives the same values for ~300 ids
    units, salt = list(dict.fromkeys(_random_ids(300, seed=1))), "sålt-\x00-☃"
    code = (
        "import json, sys; from layoutopt.campaign.assign import unit_hash; "
        "d = json.load(sys.stdin); rounds = (1, 7, 'holdout'); "
        "print(json.dumps([unit_hash(d['salt'], r, u) for r in rounds for u in d['units']]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps({"salt": salt, "units": units}),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    here = [unit_hash(salt, r, u) for r in (1, 7, "holdout") for u in units]
    assert json.loads(out) == here
    assert all(0 <= h < SCALE for h in here) and len(set(here)) == len(here)
