"""Tests for layoutopt.model.space: indexing, counting, streaming and validating a space."""

from __future__ import annotations

import itertools
import math
import tomllib

import numpy as np
import pytest

from layoutopt.model import space_index, space_rules, space_toml, space_variants
from layoutopt.model.space import LayoutSpace

SMALL = LayoutSpace(
    {"headline": ["h1", "h2", "h3"], "image": ["a", "b"], "reviews": ["none", "stars", "quote"]},
    forbidden=[{"headline": "h2", "image": "b"}, {"image": "a", "reviews": "quote"}],
)


def brute_force_allowed(cardinalities, rules) -> list[tuple[int, ...]]:
    """Every allowed code tuple, by enumerating the product and checking each rule.

    ``rules`` are sequences of ``(component index, variant code)`` pairs.
    """
    out = []
    for codes in itertools.product(*(range(n) for n in cardinalities)):
        if not any(all(codes[k] == v for k, v in rule) for rule in rules):
            out.append(codes)
    return out


def test_index_round_trip_including_forbidden():
    allowed = set(brute_force_allowed(SMALL.cardinalities, SMALL.forbidden))
    seen_allowed = 0
    for i in range(SMALL.size):
        codes = SMALL.codes_of(i)
        assert SMALL.indices(np.array([codes]))[0] == i
        if codes in allowed:
            layout = SMALL.layout(i)
            assert SMALL.index(layout) == i
            assert SMALL.encode(layout) == codes
            assert SMALL.is_allowed(layout) and SMALL.violated_rule(codes) is None
            seen_allowed += 1
        else:
            with pytest.raises(ValueError, match="forbidden by rule"):
                SMALL.layout(i)
            with pytest.raises(ValueError, match="forbidden by rule"):
                SMALL.index(SMALL.decode(codes))
            assert not SMALL.is_allowed(codes)
    assert seen_allowed == SMALL.num_allowed == len(allowed)


def test_last_component_varies_fastest():
    assert SMALL.strides == (6, 3, 1)
    assert SMALL.index({"headline": "h1", "image": "a", "reviews": "stars"}) == 1
    assert SMALL.index({"headline": "h3", "image": "a", "reviews": "none"}) == 12
    np.testing.assert_array_equal(SMALL.codes(np.arange(SMALL.size)), SMALL.codes_range(0, 99))


def test_index_out_of_range():
    for i in (-1, SMALL.size):
        with pytest.raises(ValueError, match="out of range"):
            SMALL.layout(i)


@pytest.mark.parametrize("seed", range(12))
def test_num_allowed_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    card = rng.integers(1, 5, size=rng.integers(2, 5))
    comps = {f"c{k}": [f"v{j}" for j in range(n)] for k, n in enumerate(card)}
    rules = []  # overlapping and repeated rules included, to exercise inclusion-exclusion
    for _ in range(rng.integers(1, 7)):
        ks = rng.choice(len(card), size=rng.integers(1, min(3, len(card)) + 1), replace=False)
        rules.append({int(k): int(rng.integers(card[k])) for k in ks})
    expected = brute_force_allowed(card, [r.items() for r in rules])
    labelled = [{f"c{k}": f"v{v}" for k, v in r.items()} for r in rules]
    if not expected:
        with pytest.raises(ValueError, match="forbid every layout"):
            LayoutSpace(comps, forbidden=labelled)
        return
    space = LayoutSpace(comps, forbidden=labelled)
    assert space.num_allowed == len(expected)
    codes = space.codes_range(0, space.size)
    assert int(space.allowed_mask(codes).sum()) == space.num_allowed
    streamed = np.concatenate([c for _, c in space.iter_chunks(chunk_size=5)])
    assert len(streamed) == space.num_allowed
    assert [tuple(int(x) for x in r) for r in streamed] == expected


def test_huge_space_codes_range_and_frame():
    # 10^30 layouts: far beyond int64, so only Python-int paths may be used.
    huge = LayoutSpace({f"c{k:02d}": [str(j) for j in range(10)] for k in range(30)})
    assert huge.size == 10**30
    start = huge.size - 7
    codes = huge.codes_range(start, 100)  # clipped at the end of the space
    assert codes.shape == (7, 30) and codes.dtype == np.int32
    for row, i in zip(codes, range(start, huge.size), strict=True):
        assert tuple(row) == huge.codes_of(i)
        assert huge.index(huge.decode(row)) == i
    # a range that carries across many digits
    start = 10**20 - 3
    codes = huge.codes_range(start, 6)
    assert [huge.index(huge.decode(r)) for r in codes] == list(range(start, start + 6))
    frame = huge.frame(codes)
    assert list(frame["index"]) == list(range(start, start + 6))
    with pytest.raises(ValueError, match="exceeds int64"):
        huge.indices(codes)
    with pytest.raises(ValueError, match="outside"):
        huge.codes_range(-1, 3)


def test_frame_has_index_and_labels():
    frame = SMALL.frame(SMALL.codes(np.array([0, 1, 17])))
    assert list(frame.columns) == ["index", "headline", "image", "reviews"]
    assert list(frame["index"]) == [0, 1, 17]
    assert list(frame["reviews"].astype(str)) == ["none", "stars", "quote"]


def test_forbidden_arrays_agree_with_mask():
    wanted, active, _ = SMALL.forbidden_arrays()
    codes = SMALL.codes_range(0, SMALL.size)
    hit = ((codes[:, None, :] == wanted[None]) | ~active[None]).all(-1).any(-1)
    np.testing.assert_array_equal(~hit, SMALL.allowed_mask(codes))


def test_equal_spaces_hash_equal():
    again = LayoutSpace(SMALL.to_dict()["components"], forbidden=SMALL.to_dict()["forbidden"])
    assert again == SMALL and hash(again) == hash(SMALL)
    assert LayoutSpace({"a": ["x"]}) != LayoutSpace({"a": ["y"]})


# (case id, components, forbidden, expected substrings)
BAD_SPACES = [
    ("no components", {}, None, ["at least one component"]),
    ("empty component", {"headline": [], "image": ["a"]}, None, ["'headline'", "no variants"]),
    ("labels as a string", {"headline": "h1"}, None, ["'headline'", "list of labels"]),
    ("duplicate label", {"headline": ["h1", "h2", "h1"]}, None, ["'headline'", "'h1'", "twice"]),
    ("reserved name", {"clicks": ["a"]}, None, ["'clicks'", "reserved"]),
    (
        "unknown component in rule",
        {"headline": ["h1", "h2"]},
        [{"colour": "red"}],
        ["rule #0", "unknown component 'colour'", "['headline']"],
    ),
    (
        "unknown variant in rule",
        {"headline": ["h1", "h2"], "image": ["a"]},
        [{"headline": "h1"}, {"headline": "h9"}],
        ["rule #1", "unknown variant 'h9'", "'headline'", "['h1', 'h2']"],
    ),
    ("empty rule", {"headline": ["h1", "h2"]}, [{}], ["rule #0", "non-empty"]),
    (
        "rules forbid everything",
        {"headline": ["h1", "h2"], "image": ["a"]},
        [{"headline": "h1"}, {"image": "a", "headline": "h2"}],
        ["forbid every layout"],
    ),
]


@pytest.mark.parametrize(
    ("components", "forbidden", "expected"),
    [c[1:] for c in BAD_SPACES],
    ids=[c[0] for c in BAD_SPACES],
)
def test_invalid_spaces_are_rejected(components, forbidden, expected):
    with pytest.raises(ValueError) as info:
        LayoutSpace(components, forbidden=forbidden)
    for part in expected:
        assert part in str(info.value), f"{part!r} not in {info.value}"


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({"headline": "h1", "image": "a"}, "lacks component 'reviews'"),
        ({"headline": "h1", "image": "a", "reviews": "none", "x": "1"}, "unknown component"),
        ({"headline": "h7", "image": "a", "reviews": "none"}, "unknown variant 'h7'"),
        (["h1", "a", "none"], "must be a mapping"),
    ],
)
def test_encode_errors(layout, expected):
    with pytest.raises(ValueError, match=expected):
        SMALL.encode(layout)


def test_toml_round_trip(tmp_path):
    space = LayoutSpace(
        {"head line": ['say "hi"', "back\\slash", "h3"], "image": ["1", "2"]},
        forbidden=[{"head line": "h3", "image": "2"}],
    )
    path = tmp_path / "space.toml"
    path.write_text(space.to_toml())
    assert LayoutSpace.from_toml(path) == space


# (case id, file content (None: no file), expected substrings besides the file name)
BAD_TOML = [
    ("missing file", None, ["no such layout-space file"]),
    ("invalid toml", "[components\nheadline = [", ["not valid TOML"]),
    ("no components table", "headline = ['a']\n", ["[components]"]),
    ("unknown top-level key", "[components]\na = ['x']\n[extras]\nb = 1\n", ["'extras'"]),
    ("empty component", "[components]\na = []\n", ["'a'", "no variants"]),
    (
        "single-bracket forbidden table",
        "[components]\na = ['x', 'y']\nb = ['p', 'q']\n[forbidden]\na = 'x'\n",
        ["[[forbidden]]"],
    ),
    (
        "rule with unknown variant",
        "[components]\na = ['x', 'y']\n[[forbidden]]\na = 'z'\n",
        ["unknown variant 'z'"],
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in BAD_TOML], ids=[c[0] for c in BAD_TOML]
)
def test_toml_errors_name_the_file(tmp_path, content, expected):
    path = tmp_path / "myspace.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError) as info:
        LayoutSpace.from_toml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_size_is_the_product_of_cardinalities():
    assert SMALL.size == math.prod(SMALL.cardinalities) == 18
    assert SMALL.num_components == 3
    assert "size=18" in repr(SMALL)


# ------------------------------------------------ the modules the space delegates to


@pytest.mark.parametrize("seed", range(6))
def test_space_index_functions_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    card = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(1, 5)))
    every = list(itertools.product(*(range(n) for n in card)))  # last component fastest
    strides = space_index.strides_of(card)
    for i, codes in enumerate(every):
        assert space_index.codes_of_index(i, card) == codes
        assert space_index.index_of_codes(codes, strides) == i
    np.testing.assert_array_equal(space_index.codes_of_indices(np.arange(len(every)), card), every)
    np.testing.assert_array_equal(
        space_index.indices_of_codes(np.array(every), strides), range(len(every))
    )
    start = int(rng.integers(len(every)))
    np.testing.assert_array_equal(space_index.codes_range(start, 7, card), every[start : start + 7])


def test_space_index_codes_range_beyond_int64():
    card = (10,) * 22  # 10^22 layouts: past int64, so only the range form applies
    start = 10**22 - 3
    rows = space_index.codes_range(start, 5, card)
    assert [tuple(r) for r in rows] == [
        space_index.codes_of_index(start + j, card) for j in range(3)
    ]
    with pytest.raises(ValueError, match="exceeds int64"):
        space_index.require_int64(math.prod(card))


@pytest.mark.parametrize("seed", range(8))
def test_count_forbidden_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    card = tuple(int(n) for n in rng.integers(1, 4, size=rng.integers(2, 5)))
    rules = []
    for _ in range(rng.integers(0, 7)):
        ks = rng.choice(len(card), size=rng.integers(1, len(card) + 1), replace=False)
        rules.append(tuple(sorted((int(k), int(rng.integers(card[k]))) for k in ks)))
    allowed = brute_force_allowed(card, rules)
    assert space_rules.count_forbidden(rules, card) == math.prod(card) - len(allowed)
    every = np.array(list(itertools.product(*(range(n) for n in card))))
    mask = space_rules.allowed_mask(every, rules)
    assert [tuple(c) for c in every[mask]] == allowed


def test_toml_text_reads_back_to_the_same_plain_data():
    space = LayoutSpace(
        {'head "line"': ["h\\1", "h2", "h3"], "image": ["a", "b"]},
        forbidden=[{'head "line"': "h2", "image": "b"}],
        segments={"member": ["prime", "non_prime"]},
        attributes={
            'head "line"': {
                "h\\1": {"free": True, "n": 1.5, "theme": "x"},
                "h2": {"free": False, "n": 2, "theme": "y"},
                "h3": {"free": True, "n": -1, "theme": "x"},
            }
        },
        retired={"image": ["a"]},
    )
    data = space.to_dict()
    assert tomllib.loads(space_toml.toml_text(data)) == data
    assert LayoutSpace.from_dict(tomllib.loads(space.to_toml())) == space


def test_translate_codes_between_reordered_spaces():
    other = LayoutSpace(
        {"reviews": ["quote", "none", "stars"], "image": ["b", "a"], "headline": ["h3", "h2", "h1"]}
    )
    codes = other.codes(np.arange(other.size))
    mapped = space_variants.translate_codes(SMALL, other, codes)
    for row, back in zip(codes, mapped, strict=True):
        assert SMALL.decode(back) == other.decode(row)
