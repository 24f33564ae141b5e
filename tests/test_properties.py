"""Property-based tests (hypothesis) over boundaries a table of cases cannot enumerate:
spaces whose labels are any unicode text round-trip through CSV and Parquet observations and
through a campaign store (SQLite) with identical counts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from layoutopt.data.observations import Observations  # noqa: E402
from layoutopt.model.space import LayoutSpace  # noqa: E402
from layoutopt.util.io import write_csv  # noqa: E402

LABEL = st.text(min_size=1, max_size=10)
SETTINGS = settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def spaces_and_rows(draw):
    """A space of 1-3 components of 1-4 unicode labels, and 1-12 result rows on it."""
    k = draw(st.integers(1, 3))
    components = {
        f"c{j}": draw(st.lists(LABEL, min_size=1, max_size=4, unique=True)) for j in range(k)
    }
    try:
        space = LayoutSpace(components)
    except ValueError:
        assume(False)  # the space refuses the labels up front: nothing to round-trip
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        row = {c: draw(st.sampled_from(v)) for c, v in components.items()}
        imp = draw(st.integers(0, 2**40))
        row |= {"impressions": imp, "clicks": draw(st.integers(0, imp))}
        rows.append(row)
    return space, pd.DataFrame(rows)


def _counts(obs: Observations) -> dict[tuple, tuple[int, int]]:
    return {
        tuple(c): (int(i), int(k))
        for c, i, k in zip(obs.codes.tolist(), obs.impressions, obs.clicks, strict=True)
    }


@SETTINGS
@given(spaces_and_rows())
def test_unicode_labels_round_trip_through_csv_and_parquet(case):
    space, frame = case
    want = _counts(Observations.from_frame(frame, space))
    assert sum(i for i, _ in want.values()) == int(frame["impressions"].sum())
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_csv(frame, Path(tmp) / "r.csv")
        assert _counts(Observations.from_csv(csv, space)) == want
        parquet = Path(tmp) / "r.parquet"
        frame.to_parquet(parquet, index=False)
        assert _counts(Observations.from_parquet(parquet, space)) == want


@SETTINGS
@given(st.lists(st.integers(0, 2**53), min_size=1, max_size=20))
def test_counts_up_to_2_53_are_exact_through_csv(counts):
    space = LayoutSpace({"a": ["x"]})
    frame = pd.DataFrame({"a": ["x"] * len(counts), "impressions": counts, "clicks": 0})
    assume(sum(counts) <= 2**53)
    with tempfile.TemporaryDirectory() as tmp:
        obs = Observations.from_csv(write_csv(frame, Path(tmp) / "r.csv"), space)
    assert int(np.asarray(obs.impressions, dtype=object).sum()) == sum(counts)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(spaces_and_rows())
def test_unicode_labels_round_trip_through_the_store(case):
    from layoutopt.campaign.campaign import Campaign

    space, frame = case
    want = _counts(Observations.from_frame(frame, space))
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_csv(frame, Path(tmp) / "r.csv")
        with Campaign.create(Path(tmp) / "c.db", space) as camp:
            camp.ingest(csv)
        with Campaign.open(Path(tmp) / "c.db") as camp:
            assert camp.space == space
            assert _counts(camp.observations()) == want
