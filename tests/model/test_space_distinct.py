"""Tests for distinct groups (slots without repeats): counting, masks, validation, TOML."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from layoutopt.model.space import LayoutSpace

ITEMS = ["a", "b", "c", "d"]


def brute_force(space: LayoutSpace) -> list[tuple[int, ...]]:
    """Every allowed code tuple, checking each forbidden rule and each group by hand."""
    out = []
    for codes in itertools.product(*(range(n) for n in space.cardinalities)):
        if any(all(codes[k] == v for k, v in rule) for rule in space.forbidden):
            continue
        if any(len({codes[k] for k in g}) < len(g) for g in space.distinct):
            continue
        out.append(codes)
    return out


CASES = [
    dict(components={"s1": ITEMS, "s2": ITEMS, "s3": ITEMS}, distinct=[("s1", "s2", "s3")]),
    dict(
        components={"s1": ITEMS, "x": ["p", "q"], "s2": ITEMS, "s3": ITEMS},
        distinct=[["s3", "s1"]],
        forbidden=[{"s1": "a", "x": "p"}, {"s2": "b", "s3": "b"}, {"s1": "c", "s3": "c"}],
    ),
    dict(
        components={"s1": ITEMS, "s2": ITEMS, "t1": ["u", "v"], "t2": ["u", "v"]},
        distinct=[("s1", "s2"), ("t1", "t2")],
        forbidden=[{"s1": "a", "t1": "u"}],
        retired={"s2": ["d"]},
    ),
    dict(components={"s1": ["a", "b"], "s2": ["a", "b"], "s3": ["a", "b"]}, distinct=None),
]


@pytest.mark.parametrize("case", CASES)
def test_count_mask_and_chunks_agree_with_brute_force(case):
    space = LayoutSpace(**case)
    expected = brute_force(space)
    assert space.num_allowed == len(expected)
    codes = space.codes_range(0, space.size)
    mask = space.allowed_mask(codes)
    assert [tuple(int(x) for x in c) for c in codes[mask]] == expected
    streamed = np.concatenate([c for _, c in space.iter_chunks(7)])
    np.testing.assert_array_equal(streamed, codes[mask])
    # the dense arrays of traced code say the same
    wanted, active, pairs = space.forbidden_arrays()
    hit = ((codes[:, None, :] == wanted[None]) | ~active[None]).all(-1).any(-1)
    hit |= (codes[:, pairs[:, 0]] == codes[:, pairs[:, 1]]).any(-1)
    np.testing.assert_array_equal(~hit, mask)


def test_eighty_items_in_three_slots_is_one_rule():
    items = [f"item{i}" for i in range(80)]
    space = LayoutSpace({"s1": items, "s2": items, "s3": items}, distinct=[("s1", "s2", "s3")])
    assert space.num_allowed == 80 * 79 * 78 == 492_960
    assert space.size == 80**3 and space.forbidden == () and space.distinct == ((0, 1, 2),)
    assert len(space.forbidden_arrays().pairs) == 3  # pairs of slots, not of items


def test_repeated_item_is_refused_with_the_pair():
    space = LayoutSpace(**CASES[0])
    layout = {"s1": "a", "s2": "c", "s3": "a"}
    assert not space.is_allowed(layout)
    assert space.violated_rule(space.encode(layout)) == {"s1": "a", "s3": "a"}
    with pytest.raises(ValueError, match=r"forbidden by rule \{'s1': 'a', 's3': 'a'\}"):
        space.index(layout)
    assert space.is_allowed({"s1": "a", "s2": "c", "s3": "b"})


@pytest.mark.parametrize(
    ("distinct", "message"),
    [
        ([("s1", "zz")], r"distinct group #0 names unknown component 'zz'; valid components"),
        ([("s1",)], "must list at least two component names"),
        ("s1", "must be a list of groups"),
        ([("s1", "s2"), ("s2", "s3")], "'s2', already in distinct group #0"),
        ([("s1", "other")], r"'other' has variants \['a', 'b', 'c'\] but 's1' has"),
        ([("s1", "rev")], "same labels in the same order"),
    ],
)
def test_bad_groups_are_refused_clearly(distinct, message):
    comps = {"s1": ITEMS, "s2": ITEMS, "s3": ITEMS, "other": ["a", "b", "c"]}
    comps["rev"] = ITEMS[::-1]
    with pytest.raises(ValueError, match=message):
        LayoutSpace(comps, distinct=distinct)


def test_more_slots_than_items_forbid_everything():
    with pytest.raises(ValueError, match="forbid every layout"):
        LayoutSpace(
            {"s1": ["a", "b"], "s2": ["a", "b"], "s3": ["a", "b"]},
            distinct=[CASES[0]["distinct"][0]],
        )


def test_round_trips_through_dict_and_toml(tmp_path):
    space = LayoutSpace(**CASES[2])
    assert space.to_dict()["distinct"] == [["s1", "s2"], ["t1", "t2"]]
    assert LayoutSpace.from_dict(space.to_dict()) == space
    path = tmp_path / "space.toml"
    path.write_text(space.to_toml())
    again = LayoutSpace.from_toml(path)
    assert again == space and hash(again) == hash(space)
    assert again != LayoutSpace(CASES[2]["components"], forbidden=CASES[2]["forbidden"])


def test_toml_in_one_line(tmp_path):
    path = tmp_path / "slots.toml"
    pool = ", ".join(f'"item{i}"' for i in range(80))
    path.write_text(
        f'distinct = [["s1", "s2", "s3"]]\n[components]\ns1 = [{pool}]\ns2 = [{pool}]\n'
        f"s3 = [{pool}]\n"
    )
    assert LayoutSpace.from_toml(path).num_allowed == 492_960
    path.write_text('distinct = ["s1", "s2"]\n[components]\ns1 = ["a"]\ns2 = ["a"]\n')
    with pytest.raises(ValueError, match=r'distinct = \[\["slot1", "slot2", "slot3"\]\]'):
        LayoutSpace.from_toml(path)


def test_new_items_go_to_every_slot_of_the_group():
    space = LayoutSpace(**CASES[0])
    with pytest.raises(ValueError, match="same labels in the same order"):
        space.with_variants({"s1": ["e"]})
    grown = space.with_variants({s: ["e"] for s in ("s1", "s2", "s3")})
    assert grown.num_allowed == 5 * 4 * 3 and grown.distinct == space.distinct


def test_shared_effects_need_groups_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match=r"shared_effects=True: True shares .* needs distinct"):
        LayoutSpace({"s1": ITEMS, "s2": ITEMS}, shared_effects=True)
    with pytest.raises(ValueError, match="shared_effects='yes'"):
        LayoutSpace(**CASES[0], shared_effects="yes")
    space = LayoutSpace(**CASES[0], shared_effects=True)
    assert space != LayoutSpace(**CASES[0]) and space.to_dict()["shared_effects"] is True
    path = tmp_path / "space.toml"
    path.write_text(space.to_toml())
    assert "shared_effects = true" in path.read_text()
    assert LayoutSpace.from_toml(path) == space
