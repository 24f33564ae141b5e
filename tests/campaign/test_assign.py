"""Tests of the hash assignment (``layoutopt.campaign.assign``) against its specification.

``docs/assignment.md`` is the specification: its test vectors and its JavaScript reference
implementation (run under Node.js in a separate process) must agree with the Python code.
Statistical checks use fixed unit ids (the hash is deterministic) and 4-standard-error
tolerances: with N units a share p has sd sqrt(p (1 - p) / N), so a false alarm per check is
about 6e-5.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from layoutopt.campaign.assign import (
    SCALE,
    RoundAllocation,
    assign_units,
    cohort_propensities,
    threshold_probabilities,
    thresholds,
    unit_hash,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "assignment.md"


def _alloc(round_, index, weights) -> RoundAllocation:
    return RoundAllocation(round_, np.asarray(index, np.int64), thresholds(weights))


def test_vectors_of_the_specification():
    rows = re.findall(
        r"^\| `([^`]+)` \| `([^`]+)` \| `([^`]+)` \| (\d+) \|$", DOC.read_text(), re.M
    )
    assert len(rows) == 5
    for salt, round_, unit, h in rows:
        assert unit_hash(salt, round_, unit) == int(h)
    t = thresholds([0.5, 0.3, 0.2])
    assert t.tolist() == [4503599627370496, 7205759403792794, 9007199254740992]
    got = assign_units(
        "prime-2026",
        ["alice", "bob", "visitor-42", "ünïcode"],
        [[_alloc(1, [0, 1, 2], [0.5, 0.3, 0.2])]] * 4,
    )
    assert got.index.tolist() == [1, 1, 1, 0]


def test_thresholds_are_exact_probabilities():
    for weights in ([1.0], [0.2, 0.8], [1, 1, 1], [0.5, 0.0, 0.5], [1e-12, 1.0]):
        t = thresholds(weights)
        assert t[-1] == SCALE and np.all(np.diff(t) >= 0)
        w = np.asarray(weights, float) / np.sum(weights)
        np.testing.assert_allclose(threshold_probabilities(t), w, atol=2.0**-52)
    for bad in ([], [-0.1, 1.1], [0.0, 0.0], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="non-negative finite weights"):
            thresholds(bad)


def test_served_frequencies_equal_propensities():
    n = 20_000
    units = [f"u{i}" for i in range(n)]
    weights = [0.5, 0.3, 0.15, 0.05]
    history = [_alloc(1, [10, 11, 12, 13], weights)]
    got = assign_units("salt", units, [history] * n)
    for index, w in zip([10, 11, 12, 13], weights, strict=True):
        share = np.mean(got.index == index)
        assert abs(share - w) < 4 * np.sqrt(w * (1 - w) / n)
        np.testing.assert_allclose(got.propensity[got.index == index], w, rtol=1e-12)
    again = assign_units("salt", units, [history] * n)
    np.testing.assert_array_equal(got.index, again.index)  # sticky within the round
    other = assign_units("other salt", units, [history] * n)
    assert np.mean(other.index == got.index) < 0.5  # a new salt is a new randomisation


def test_sticky_across_rounds_with_redraws_and_exact_propensities():
    n = 20_000
    units = [f"visitor-{i}" for i in range(n)]
    rounds = [
        _alloc(1, [0, 1, 2], [0.5, 0.3, 0.2]),
        _alloc(2, [0, 2, 3], [0.2, 0.2, 0.6]),  # layout 1 leaves: its units are re-drawn
        _alloc(3, [0, 3], [0.9, 0.1]),  # layout 2 leaves
    ]
    first = assign_units("s", units, [rounds[:1]] * n)
    second = assign_units("s", units, [rounds[:2]] * n)
    kept = first.index != 1
    np.testing.assert_array_equal(second.index[kept], first.index[kept])
    np.testing.assert_array_equal(second.redrawn, ~kept)
    third = assign_units("s", units, [rounds] * n)
    p = cohort_propensities(rounds)
    assert abs(sum(p.values()) - 1.0) < 1e-12
    # by hand: after round 2, p = {0: .5 + .3*.2, 2: .2 + .3*.2, 3: .3*.6}; round 3 keeps 0
    # and 3 and re-draws layout 2's share (0.26) with weights 0.9 / 0.1
    want = {0: 0.56 + 0.26 * 0.9, 3: 0.18 + 0.26 * 0.1}
    assert p.keys() == want.keys()
    for index, w in want.items():
        assert abs(p[index] - w) < 1e-12
        share = np.mean(third.index == index)
        assert abs(share - w) < 4 * np.sqrt(w * (1 - w) / n)
        np.testing.assert_allclose(third.propensity[third.index == index], w, rtol=1e-12)
    # a unit first seen in round 2 walks rounds 2..3 only
    late = assign_units("s", units[:10], [rounds[1:]] * 10)
    want_late = cohort_propensities(rounds[1:])
    np.testing.assert_allclose(late.propensity, [want_late[i] for i in late.index])


def test_holdout_serves_the_control_with_its_share():
    n = 20_000
    units = [str(i) for i in range(n)]
    history = [_alloc(1, [4, 5], [0.5, 0.5])]
    got = assign_units("s", units, [history] * n, holdout=0.1, control=4)
    share = got.holdout.mean()
    assert abs(share - 0.1) < 4 * np.sqrt(0.09 / n)
    assert np.all(got.index[got.holdout] == 4)
    # the control is also in the allocation: q + (1 - q) w
    np.testing.assert_allclose(got.propensity[got.index == 4], 0.1 + 0.9 * 0.5)
    np.testing.assert_allclose(got.propensity[got.index == 5], 0.9 * 0.5)
    assert abs(np.mean(got.index == 4) - 0.55) < 4 * np.sqrt(0.55 * 0.45 / n)
    later = assign_units("s", units, [history + [_alloc(2, [5], [1.0])]] * n, 0.1, 4)
    np.testing.assert_array_equal(later.holdout, got.holdout)  # once in, always in
    with pytest.raises(ValueError, match="control"):
        assign_units("s", units[:3], [history] * 3, holdout=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        assign_units("s", units[:3], [history] * 3, holdout=1.0, control=4)


def _node() -> str | None:
    node = shutil.which("node")
    if node is None and os.environ.get("CI"):
        pytest.fail("Node.js is needed to check the JavaScript reference implementation")
    return node


def test_javascript_reference_agrees_in_a_separate_process(tmp_path):
    node = _node()
    if node is None:
        pytest.skip("node not installed")
    code = re.search(r"```javascript\n(.*?)```", DOC.read_text(), re.S).group(1)
    (tmp_path / "assign.js").write_text(code)
    rounds = [
        _alloc(1, [0, 1, 2], [0.5, 0.3, 0.2]),
        _alloc(2, [0, 2, 3], [0.2, 0.2, 0.6]),
        _alloc(3, [0, 3], [0.9, 0.1]),
    ]
    history = [
        {
            "round": a.round,
            "layouts": [
                {"index": int(i), "threshold": int(t)}
                for i, t in zip(a.index, a.thresholds, strict=True)
            ],
        }
        for a in rounds
    ]
    units = [f"visitor-{i}" for i in range(3000)] + ["ünïcode", "", "a\x1fb", "🙂"]
    (tmp_path / "input.json").write_text(json.dumps({"units": units, "history": history}))
    (tmp_path / "run.js").write_text(
        "const {assign} = require('./assign.js');\n"
        "const x = JSON.parse(require('fs').readFileSync('input.json', 'utf8'));\n"
        "console.log(JSON.stringify(x.units.map((u) => assign('campaign-salt', u, x.history, "
        "0.1, 3))));\n"
    )
    out = subprocess.run(
        [node, "run.js"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
    )
    got = assign_units("campaign-salt", units, [rounds] * len(units), holdout=0.1, control=3)
    assert json.loads(out.stdout) == got.index.tolist()
