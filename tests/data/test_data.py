"""Tests for layoutopt.data: reading, validating and aggregating observations."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from layoutopt.data.observations import Observations, read_layout_codes
from layoutopt.model.space import LayoutSpace

SPACE = LayoutSpace(
    {"headline": ["h1", "h2", "h3"], "image": ["1", "2"], "reviews": ["none", "stars"]},
    forbidden=[{"headline": "h3", "image": "2"}],
)


def good_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "headline": ["h1", "h2", "h1", "h3"],
            "image": ["1", "2", "1", "1"],
            "reviews": ["none", "stars", "none", "none"],
            "impressions": [100, 200, 50, 10],
            "clicks": [5, 9, 2, 0],
        }
    )


def with_cell(column: str, row: int, value) -> pd.DataFrame:
    """The good frame with one cell (0-based row) replaced; dtype widened to object."""
    df = good_frame()
    df[column] = df[column].astype(object)
    df.loc[row, column] = value
    return df


# (case id, frame factory, expected substrings of the error message)
BAD_FRAMES = [
    ("missing component", lambda: good_frame().drop(columns="image"), ["missing", "'image'"]),
    ("missing clicks", lambda: good_frame().drop(columns="clicks"), ["missing", "'clicks'"]),
    (
        "duplicate column",
        lambda: pd.concat([good_frame(), good_frame()[["image"]]], axis=1),
        ["'image'", "more than once"],
    ),
    (
        "unknown variant",
        lambda: with_cell("headline", 1, "h9"),
        ["row 2", "'headline'", "'h9'", "valid variants", "'h1', 'h2', 'h3'"],
    ),
    ("missing label", lambda: with_cell("reviews", 2, None), ["row 3", "'reviews'", "missing"]),
    ("empty label", lambda: with_cell("reviews", 0, "  "), ["row 1", "'reviews'", "missing"]),
    (
        "forbidden layout",
        lambda: with_cell("image", 3, "2"),
        ["row 4", "forbidden", "'headline': 'h3'", "'image': '2'"],
    ),
    ("negative count", lambda: with_cell("impressions", 1, -3), ["row 2", "'impressions'", "-3"]),
    (
        "fractional count",
        lambda: with_cell("clicks", 0, 2.5),
        ["row 1", "'clicks'", "2.5", "whole"],
    ),
    ("text count", lambda: with_cell("clicks", 2, "abc"), ["row 3", "'clicks'", "'abc'", "number"]),
    (
        "NaN count",
        lambda: with_cell("impressions", 0, np.nan),
        ["row 1", "'impressions'", "missing"],
    ),
    ("None count", lambda: with_cell("clicks", 3, None), ["row 4", "'clicks'", "missing"]),
    (
        "inf count",
        lambda: with_cell("impressions", 1, np.inf),
        ["row 2", "'impressions'", "finite"],
    ),
    ("bool count", lambda: good_frame().assign(clicks=True), ["row 1", "'clicks'", "not a number"]),
    (
        "clicks above impressions",
        lambda: with_cell("clicks", 1, 500),
        ["row 2", "'clicks'", "500", "200", "exceed"],
    ),
    ("no rows", lambda: good_frame().iloc[:0], ["no data rows"]),
]


@pytest.mark.parametrize(
    ("make", "expected"), [c[1:] for c in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES]
)
def test_from_frame_rejects_bad_input(make, expected):
    df = make()
    with pytest.raises(ValueError) as info:
        Observations.from_frame(df, SPACE, source="mydata")
    message = str(info.value)
    assert message.startswith("mydata: ")
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert "np." not in message  # values are shown as plain Python values


def test_repeated_layouts_are_summed_and_sorted_by_index():
    obs = Observations.from_frame(good_frame(), SPACE)
    assert obs.num_layouts == 3
    got = {
        SPACE.index(SPACE.decode(c)): (int(i), int(k))
        for c, i, k in zip(obs.codes, obs.impressions, obs.clicks, strict=True)
    }
    h1 = SPACE.index({"headline": "h1", "image": "1", "reviews": "none"})
    h2 = SPACE.index({"headline": "h2", "image": "2", "reviews": "stars"})
    h3 = SPACE.index({"headline": "h3", "image": "1", "reviews": "none"})
    assert got == {h1: (150, 7), h2: (200, 9), h3: (10, 0)}
    assert list(SPACE.indices(obs.codes)) == sorted(got)
    assert obs.impressions.dtype == np.int64 and obs.codes.dtype == np.int32


def test_input_frame_is_not_modified():
    df = good_frame()
    df["headline"] = df["headline"].astype("category")
    df.index = [10, 20, 30, 40]
    before = df.copy(deep=True)
    Observations.from_frame(df, SPACE)
    pd.testing.assert_frame_equal(df, before)


def test_labels_compare_as_strings_and_ignored_columns():
    df = good_frame()
    df["image"] = df["image"].astype(int)  # labels "1"/"2" arrive as integers
    df["index"] = 999  # written by design/propose; ignored on input
    df["weight"] = 0.5
    obs = Observations.from_frame(df, SPACE)
    assert int(obs.impressions.sum()) == 360


def test_row_numbers_ignore_the_frame_index():
    df = with_cell("headline", 2, "bad")
    df.index = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="row 3, column 'headline'"):
        Observations.from_frame(df, SPACE)


def test_count_columns_as_text_and_float_are_accepted():
    df = good_frame().astype({"impressions": str, "clicks": float})
    obs = Observations.from_frame(df, SPACE)
    assert int(obs.clicks.sum()) == 16


def test_to_frame_round_trip_and_repr():
    obs = Observations.from_frame(good_frame(), SPACE)
    back = Observations.from_frame(obs.to_frame(), SPACE)
    np.testing.assert_array_equal(back.codes, obs.codes)
    np.testing.assert_array_equal(back.impressions, obs.impressions)
    np.testing.assert_array_equal(back.clicks, obs.clicks)
    assert list(obs.to_frame().columns) == ["headline", "image", "reviews", "impressions", "clicks"]
    text = repr(obs)
    assert "3 layouts" in text and "360 impressions" in text and "16 clicks" in text


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_round_trip(tmp_path, suffix):
    path = tmp_path / f"obs{suffix}"
    df = good_frame()
    if suffix == ".csv":
        df.to_csv(path, index=False)
        obs = Observations.from_csv(path, SPACE)
    else:
        df.to_parquet(path, index=False)
        obs = Observations.from_parquet(path, SPACE)
    ref = Observations.from_frame(df, SPACE)
    np.testing.assert_array_equal(obs.codes, ref.codes)
    np.testing.assert_array_equal(obs.impressions, ref.impressions)
    same = Observations.from_file(path, SPACE)
    np.testing.assert_array_equal(same.clicks, ref.clicks)


def test_csv_keeps_labels_that_look_like_missing_values(tmp_path):
    space = LayoutSpace({"reviews": ["None", "NA"], "image": ["1", "2"]})
    path = tmp_path / "obs.csv"
    path.write_text("reviews,image,impressions,clicks\nNone,1,10,1\nNA,2,20,2\n")
    obs = Observations.from_csv(path, space)
    assert obs.num_layouts == 2


# (case id, file name, file content (None: do not create), expected substrings)
BAD_FILES = [
    ("missing file", "nope.csv", None, ["nope.csv", "no such"]),
    ("empty file", "empty.csv", "", ["empty.csv", "empty file"]),
    ("header only", "header.csv", "headline,image,reviews,impressions,clicks\n", ["no data rows"]),
    (
        "bad count in file",
        "bad.csv",
        "headline,image,reviews,impressions,clicks\nh1,1,none,10,1\nh2,1,none,abc,1\n",
        ["bad.csv: row 2, column 'impressions'", "'abc'"],
    ),
    (
        "bad variant in file",
        "bad.csv",
        "headline,image,reviews,impressions,clicks\nh1,7,none,10,1\n",
        ["bad.csv: row 1, column 'image'", "'7'", "valid variants"],
    ),
    (
        "ragged csv",
        "ragged.csv",
        "headline,image,reviews,impressions,clicks\nh1,1,none,10,1,9,9\n",
        ["ragged.csv", "not a readable CSV"],
    ),
    (
        "not parquet",
        "junk.parquet",
        "this is not parquet",
        ["junk.parquet", "not a readable Parquet"],
    ),
    ("missing parquet", "nope.parquet", None, ["nope.parquet", "no such"]),
    ("unknown suffix", "data.xlsx", "x", ["data.xlsx", "'.xlsx'", ".csv, .csv.gz or .parquet"]),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_files_name_the_file(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError) as info:
        Observations.from_file(path, SPACE)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_from_codes_sums_repeats():
    obs = Observations.from_codes(SPACE, [[0, 0, 0], [0, 0, 0], [1, 1, 1]], [10, 5, 7], [1, 1, 0])
    np.testing.assert_array_equal(obs.impressions, [15, 7])
    np.testing.assert_array_equal(obs.clicks, [2, 0])


def test_from_codes_names_a_forbidden_row_zero_based():
    h3 = SPACE.variants[0].index("h3")
    img2 = SPACE.variants[SPACE.components.index("image")].index("2")
    row = [0, 0, 0]
    row[0], row[SPACE.components.index("image")] = h3, img2
    with pytest.raises(ValueError, match=r"codes: row 1: layout .* is forbidden by rule"):
        Observations.from_codes(SPACE, [[0, 0, 0], row], [10, 10], [1, 1], source="codes")


def test_read_layout_codes_ignores_other_columns(tmp_path):
    path = tmp_path / "proposal.csv"
    df = good_frame().assign(index=0, weight=0.25, note="x")
    df.to_csv(path, index=False)
    codes = read_layout_codes(path, SPACE)
    assert codes.shape == (4, 3)  # repeats kept, in file order
    assert SPACE.decode(codes[1]) == {"headline": "h2", "image": "2", "reviews": "stars"}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (good_frame().drop(columns="reviews"), ["missing column", "'reviews'"]),
        (with_cell("image", 3, "2"), ["row 4", "forbidden"]),
        (with_cell("headline", 0, "zzz"), ["row 1, column 'headline'", "'zzz'"]),
    ],
)
def test_read_layout_codes_errors(tmp_path, frame, expected):
    path = tmp_path / "layouts.parquet"
    frame.to_parquet(path)
    with pytest.raises(ValueError) as info:
        read_layout_codes(path, SPACE)
    assert str(info.value).startswith(f"{path}: ")
    for part in expected:
        assert part in str(info.value)


@pytest.mark.parametrize(
    ("cells", "what"),
    [
        (pd.Series([3, 2**53 + 1], dtype="int64"), "9007199254740993 is too large"),
        (pd.Series([3, 2**63 + 5], dtype="uint64"), "9223372036854775813 is too large"),
        (pd.Series(["3", "9007199254740993"]), "'9007199254740993' is too large"),
        (pd.Series(["3", "9007199254740993.0"]), "'9007199254740993.0' is too large"),
        (pd.Series(["3", "9007199254740992.5"]), "'9007199254740992.5' is not a whole number"),
    ],
)
def test_counts_past_2_53_are_refused_exactly(cells, what):
    from layoutopt.data.columns import parse_counts

    with pytest.raises(ValueError, match=rf"x: row 2, column 'impressions': {re.escape(what)}"):
        parse_counts(cells, "impressions", "x")
    exact = parse_counts(pd.Series(["1", str(2**53)]), "impressions", "x")
    assert exact.tolist() == [1, 2**53]
    assert parse_counts(pd.Series([1, 2**53], dtype="int64"), "impressions", "x")[1] == 2**53
