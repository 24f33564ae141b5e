"""Optional components of a layout space: the absent state as one more variant."""

from __future__ import annotations

import pytest

from layoutopt import ABSENT
from layoutopt.model.space import LayoutSpace

COMPONENTS = {"headline": ["h1", "h2", "h3"], "reviews": ["stars", "quote"]}
SPACE = LayoutSpace(
    COMPONENTS, optional=["reviews"], forbidden=[{"headline": "h3", "reviews": None}]
)


def test_absent_is_code_zero_and_none_means_absent():
    assert SPACE.variants[1] == (ABSENT, "stars", "quote") and SPACE.optional == (1,)
    assert SPACE.size == 9 and SPACE.num_allowed == 8
    assert SPACE.encode({"headline": "h1", "reviews": None}) == (0, 0)
    assert SPACE.encode({"headline": "h1", "reviews": float("nan")}) == (0, 0)
    assert SPACE.layout(3) == {"headline": "h2", "reviews": ABSENT}
    assert not SPACE.is_allowed({"headline": "h3", "reviews": None})
    with pytest.raises(ValueError, match="no variant for component 'headline', which is not"):
        SPACE.encode({"headline": None, "reviews": "stars"})


def test_round_trips_and_new_variants_keep_codes(tmp_path):
    data = SPACE.to_dict()
    assert data["components"] == COMPONENTS and data["optional"] == ["reviews"]
    assert LayoutSpace.from_dict(data) == SPACE
    path = tmp_path / "space.toml"
    path.write_text(SPACE.to_toml())
    assert 'optional = ["reviews"]' in path.read_text()
    assert LayoutSpace.from_toml(path) == SPACE
    assert SPACE != LayoutSpace(COMPONENTS, forbidden=[{"headline": "h3", "reviews": "stars"}])
    grown = SPACE.with_variants({"reviews": ["video"]})
    assert grown.variants[1] == (ABSENT, "stars", "quote", "video")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(optional=["nope"]), "optional names unknown component 'nope'"),
        (dict(optional="reviews"), "optional must be a list of component names"),
        (
            dict(components={"reviews": ["", "stars"]}, optional=["reviews"]),
            "lists the empty label '': that label is its absent state already",
        ),
        (
            dict(optional=["reviews"], attributes={"reviews": {"stars": {"n": 1}}}),
            r"optional component\(s\) \['reviews'\] cannot carry attributes",
        ),
        (
            dict(
                components={"s1": ["a", "b"], "s2": ["a", "b"]},
                optional=["s1"],
                distinct=[("s1", "s2")],
            ),
            "same labels in the same order",
        ),
        (
            dict(
                components={"s1": ["a", "b"], "s2": ["a", "b"]},
                optional=["s1", "s2"],
                distinct=[("s1", "s2")],
            ),
            "a component of a distinct group cannot be optional",
        ),
    ],
)
def test_bad_optional_declarations_are_refused(kwargs, message):
    kwargs = {"components": COMPONENTS} | kwargs
    with pytest.raises(ValueError, match=message):
        LayoutSpace(**kwargs)
