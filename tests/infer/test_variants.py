"""Variants that come and go, and variant attributes, at the space level (issue 10).

Oracles: brute-force enumeration of tiny spaces (indices, allowed layouts, pair coverage).
"""

from __future__ import annotations

import itertools
import json
import tomllib

import numpy as np
import pandas as pd
import pytest

from layoutopt import LayoutSpace, Observations, best_layout, fit, initial_design, score_grid
from layoutopt.data.observations import read_table
from layoutopt.decide import propose
from layoutopt.model.delay import DELAY_EDGES

ATTRS = {
    "headline": {
        "h1": {"free": True, "theme": "speed", "length": 20},
        "h2": {"free": False, "theme": "price", "length": 40},
        "h3": {"free": True, "theme": "price", "length": 30},
    }
}


@pytest.fixture
def space():
    return LayoutSpace(
        {"headline": ["h1", "h2", "h3"], "image": ["a", "b"], "reviews": ["none", "stars"]},
        forbidden=[{"headline": "h2", "image": "b"}],
        attributes=ATTRS,
    )


# ------------------------------------------------------------------------- with_variants
def test_with_variants_keeps_codes_and_maps_indices(space):
    new = space.with_variants(
        {"headline": ["h4"], "image": ["c"]},
        attributes={"headline": {"h4": {"free": False, "theme": "trust", "length": 10}}},
    )
    assert new.variants[0] == ("h1", "h2", "h3", "h4")
    assert new.variants[1] == ("a", "b", "c")
    assert new.forbidden == space.forbidden  # codes kept, so rules carry over unchanged
    # Every old layout keeps its labels and codes; its index maps through the labels.
    for i in range(space.size):
        codes = space.codes_of(i)
        assert new.codes_from(space, np.array([codes]))[0].tolist() == list(codes)
        if space.is_allowed(codes):
            assert new.layout(new.index(space.layout(i))) == space.layout(i)
    assert space.variants[0] == ("h1", "h2", "h3")  # the old space is unchanged


@pytest.mark.parametrize(
    "variants, attributes, message",
    [
        ({"footer": ["f1"]}, None, "unknown component 'footer'"),
        ({"image": ["a"]}, None, "already has variant 'a'"),
        ({"headline": ["h4"]}, None, "variant 'h4' has no value for 'free'"),
        ({"image": "c"}, None, "needs a list of labels"),
        ({}, None, "needs a mapping"),
    ],
)
def test_with_variants_errors(space, variants, attributes, message):
    with pytest.raises(ValueError, match=message):
        space.with_variants(variants, attributes=attributes)


def test_old_data_line_up_with_the_new_space(space):
    codes = np.array([[0, 0, 0], [2, 1, 1], [1, 0, 1]])
    obs = Observations.from_codes(space, codes, [100, 200, 300], [5, 6, 7])
    new = space.with_variants(
        {"headline": ["h4"]},
        attributes={"headline": {"h4": {"free": True, "theme": "speed", "length": 5}}},
    )
    moved = obs.to_space(new)
    pd.testing.assert_frame_equal(moved.to_frame(), obs.to_frame(), check_categorical=False)
    via_labels = Observations.from_frame(obs.to_frame(), new)
    np.testing.assert_array_equal(via_labels.codes, moved.codes)
    with pytest.raises(ValueError, match="variant 'h3' of component 'headline' is not in"):
        obs.to_space(LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b"], "reviews": ["x"]}))


def test_to_space_keeps_age_round_and_delays(space):
    codes = np.array([[0, 0, 0], [2, 1, 1], [0, 0, 0]])
    delays = np.arange(len(DELAY_EDGES) - 1)
    obs = Observations.from_codes(
        space,
        codes,
        [100, 200, 300],
        [5, 6, 7],
        age=[1.5, 30.0, 2.5],
        round=[0, 1, 1],
        delay_counts=delays,
    )
    new = space.with_variants(
        {"headline": ["h4"]},
        attributes={"headline": {"h4": {"free": True, "theme": "speed", "length": 5}}},
    )
    moved = obs.to_space(new)
    np.testing.assert_array_equal(moved.age, obs.age)
    np.testing.assert_array_equal(moved.round, obs.round)
    np.testing.assert_array_equal(moved.delay_counts, delays)
    np.testing.assert_array_equal(moved.impressions, obs.impressions)


# ---------------------------------------------------------------------- without_variants
def test_without_variants_excludes_from_allowed_but_not_from_data(space):
    retired = space.without_variants({"headline": ["h3"]})
    assert retired.retired == ((0, 2),)
    all_codes = retired.codes(np.arange(retired.size))
    expected = np.array([space.is_allowed(c) and c[0] != 2 for c in all_codes])
    np.testing.assert_array_equal(retired.allowed_mask(all_codes), expected)
    assert retired.num_allowed == int(expected.sum())
    chunks = np.concatenate([c for _, c in retired.iter_chunks(5)])
    assert not np.any(chunks[:, 0] == 2)
    # Data holding the retired variant are still observations of the new space.
    obs = Observations.from_codes(retired, [[2, 0, 0], [0, 0, 0]], [100, 100], [3, 4])
    assert obs.num_layouts == 2
    # ...but a layout forbidden by a real rule still is not.
    with pytest.raises(ValueError, match="forbidden by rule"):
        Observations.from_codes(retired, [[1, 1, 0]], [100], [3])
    assert retired.index({"headline": "h1", "image": "a", "reviews": "none"}) == 0
    with pytest.raises(ValueError, match="forbidden"):
        retired.index({"headline": "h3", "image": "a", "reviews": "none"})


@pytest.mark.parametrize(
    "variants, message",
    [
        ({"image": ["a", "b"]}, "cannot retire every variant of component 'image'"),
        ({"image": ["z"]}, "unknown variant 'z'"),
        ({"footer": ["a"]}, "unknown component 'footer'"),
        ({"image": "a"}, "needs a list of labels"),
    ],
)
def test_without_variants_errors(space, variants, message):
    with pytest.raises(ValueError, match=message):
        space.without_variants(variants)


def test_retired_variants_are_never_scored_picked_or_proposed(tiny_space, tiny_obs):
    retired = tiny_space.without_variants({"headline": ["h1"], "reviews": ["quote"]})
    post = fit(retired, tiny_obs.to_space(retired), seed=0, num_samples=200)
    grid = score_grid(post, retired).to_pandas()
    assert len(grid) == retired.num_allowed == 2 * 2 * 2
    assert set(grid["headline"]) == {"h2", "h3"} and "quote" not in set(grid["reviews"])
    assert best_layout(post, retired).layout["headline"] != "h1"
    batch = propose(post, retired, k=6, strategy="thompson", seed=1)
    assert not batch["headline"].isin(["h1"]).any()
    assert not batch["reviews"].isin(["quote"]).any()


# ----------------------------------------------------------------------------- attributes
def test_attribute_matrix_codes_booleans_categories_and_numbers(space):
    assert space.attribute_columns(0) == ("free", "theme=price", "length")
    lengths = np.array([20.0, 40.0, 30.0])
    expected = np.column_stack(
        [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], (lengths - lengths.mean()) / lengths.std()]
    )
    np.testing.assert_allclose(space.attribute_matrix(0), expected)
    assert space.attribute_matrix(1).shape == (2, 0)
    assert space.has_attributes
    assert not LayoutSpace({"a": ["x", "y"]}).has_attributes


@pytest.mark.parametrize(
    "attributes, message",
    [
        ({"footer": {}}, "unknown component 'footer'"),
        ({"headline": {"h9": {"free": True}}}, "unknown variant 'h9'"),
        ({"headline": {"h1": {"free": True}, "h2": {"free": False}}}, "'h3' has no value"),
        (
            {"headline": {"h1": {"x": True}, "h2": {"x": "yes"}, "h3": {"x": False}}},
            "'x' is a bool for some variants but variant 'h2' has 'yes'",
        ),
        (
            {"headline": {"h1": {"x": 1.0}, "h2": {"x": float("nan")}, "h3": {"x": 2}}},
            "valid values are booleans, strings or finite numbers",
        ),
        ({"headline": {"h1": {"x": [1]}, "h2": {"x": 1}, "h3": {"x": 2}}}, "finite numbers"),
        ({"headline": {"h1": 3}}, "must be a table"),
        ("free", "must be a mapping"),
    ],
)
def test_attribute_errors(attributes, message):
    with pytest.raises(ValueError, match=message):
        LayoutSpace({"headline": ["h1", "h2", "h3"], "image": ["a"]}, attributes=attributes)


def test_round_trip_dict_json_toml(space, tmp_path):
    changed = space.with_variants(
        {"headline": ["Free same-day delivery"]},
        attributes={
            "headline": {"Free same-day delivery": {"free": True, "theme": "speed", "length": 1.5}}
        },
    ).without_variants({"image": ["a"]})
    again = LayoutSpace.from_dict(json.loads(json.dumps(changed.to_dict())))
    assert again == changed and hash(again) == hash(changed)
    assert again.retired == changed.retired and again.attributes == changed.attributes
    path = tmp_path / "space.toml"
    path.write_text(changed.to_toml())
    assert LayoutSpace.from_toml(path) == changed
    assert changed != space
    # A retired variant is not the same space as a user rule forbidding that variant.
    rule = LayoutSpace({"a": ["x", "y"]}, forbidden=[{"a": "x"}])
    assert rule != LayoutSpace({"a": ["x", "y"]}, retired={"a": ["x"]})
    assert changed.to_dict()["forbidden"] == [{"headline": "h2", "image": "b"}]


def test_toml_attributes_as_written_in_the_issue(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        """
[components]
headline = ["Free same-day delivery", "Save 10%"]
image = ["a", "b"]

[attributes.headline."Free same-day delivery"]
free = true
theme = "speed"

[attributes.headline."Save 10%"]
free = false
theme = "price"

[retired]
image = ["b"]
"""
    )
    space = LayoutSpace.from_toml(path)
    assert space.attribute_columns(0) == ("free", "theme=price")
    np.testing.assert_array_equal(space.attribute_matrix(0), [[1, 0], [0, 1]])
    assert space.num_allowed == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[components]\na = ["x"]\n[attributes.a.y]\nz = 1\n')
    with pytest.raises(ValueError, match=r"bad.toml: attributes of component 'a' name unknown"):
        LayoutSpace.from_toml(bad)
    assert tomllib.loads(space.to_toml())["retired"] == {"image": ["b"]}


# ------------------------------------------------------------------------ design top-up
def _pairs(codes):
    return {
        (j, int(r[j]), c, int(r[c]))
        for r in codes
        for j, c in itertools.combinations(range(len(r)), 2)
    }


def test_initial_design_tops_up_every_pair_of_new_variants(space):
    old = initial_design(space, seed=0)
    new = space.with_variants(
        {"headline": ["h4", "h5"], "reviews": ["quote"]},
        attributes={
            "headline": {
                "h4": {"free": True, "theme": "speed", "length": 1},
                "h5": {"free": False, "theme": "speed", "length": 2},
            }
        },
    ).without_variants({"image": ["a"]})
    top = initial_design(new, seed=3, cover=old)
    assert top.attrs["kind"] == "top-up"
    old_codes = read_table_codes(old, new)
    top_codes = new.codes(top["index"].to_numpy())
    assert new.allowed_mask(top_codes).all()
    assert not set(map(tuple, top_codes)) & set(map(tuple, old_codes))
    # Oracle: every pair that some allowed layout holds is covered by old + top-up.
    everything = new.codes(np.arange(new.size))
    coverable = _pairs(everything[new.allowed_mask(everything)])
    assert coverable <= _pairs(np.concatenate([old_codes, top_codes]))
    # Reproducible, and the same top-up from codes as from labels.
    again = initial_design(new, seed=3, cover=old_codes)
    pd.testing.assert_frame_equal(top, again)
    # Nothing new to cover: an empty top-up.
    full = np.concatenate([old_codes, top_codes])
    assert len(initial_design(new, seed=0, cover=full)) == 0


def read_table_codes(frame, space):
    return np.array([space.encode(r) for r in frame[list(space.components)].to_dict("records")])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "random", "size": 3}, "cover= tops up a pairwise design"),
        ({"size": 5}, "cover= tops up a pairwise design"),
        ({"cover": pd.DataFrame({"headline": ["h1"]})}, "missing label column"),
        ({"cover": np.zeros((2, 2))}, r"codes must have shape \(N, 3\)"),
        ({"cover": np.full((1, 3), 7)}, "out of range"),
    ],
)
def test_initial_design_cover_errors(space, kwargs, message):
    kwargs.setdefault("cover", np.zeros((0, 3), int))
    with pytest.raises(ValueError, match=message):
        initial_design(space, seed=0, **kwargs)


def test_read_table_accepts_retired_labels(space, tmp_path):
    retired = space.without_variants({"headline": ["h1"]})
    path = tmp_path / "obs.csv"
    path.write_text("headline,image,reviews,impressions,clicks\nh1,a,none,10,1\n")
    assert read_table(path, retired) is not None
    assert Observations.from_csv(path, retired).num_layouts == 1
