"""Tests of layoutopt.score.scoring against an explicit S x N brute-force oracle."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from conftest import numpy_eta, random_draws
from scipy.special import expit, ndtr

from layoutopt.infer.posterior import Posterior
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.score.grid import GridOptions
from layoutopt.score.optimize import argmax_codes
from layoutopt.score.scoring import best_layout, score_grid, score_grid_to_parquet, score_layouts

S = 40
CARD = (4, 3, 5, 2)
RULES = [{"c0": "v1", "c2": "v3"}, {"c1": "v0", "c3": "v1"}]


def random_params(card, S, seed, main_scale=0.5, pair_scale=0.2):
    return random_draws(card, S, seed, base=-2.5, main_scale=main_scale, pair_scale=pair_scale)


def make_space(card, forbidden=None):
    comps = {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)}
    return LayoutSpace(comps, forbidden=forbidden)


def make_posterior(card=CARD, rules=RULES, seed=0, link="logit", draws=S):
    space = make_space(card, rules)
    params = random_params(card, draws, seed)
    return Posterior(space=space, prior=PriorConfig(link=link), params=params, method="laplace")


def oracle(post, level=0.9):
    """Brute force over an explicit S x N float64 array of every allowed layout."""
    space = post.space
    codes = space.codes_range(0, space.size)
    codes = codes[space.allowed_mask(codes)]
    eta = numpy_eta(post.params, codes)
    ctr = expit(eta) if post.prior.link == "logit" else ndtr(eta)
    best = np.argmax(eta, axis=1)
    return pd.DataFrame(
        {
            "index": space.indices(codes),
            "mean": ctr.mean(axis=0),
            "lower": np.quantile(ctr, (1 - level) / 2, axis=0, method="linear"),
            "upper": np.quantile(ctr, (1 + level) / 2, axis=0, method="linear"),
            "p_best": np.bincount(best, minlength=len(codes)) / eta.shape[0],
        }
    )


def by_index(df):
    return df.sort_values("index").reset_index(drop=True)


# float32 kernel vs float64 oracle: CTRs ~0.1 carry ~1e-8 absolute rounding error
ATOL = 2e-6


@pytest.mark.parametrize(
    "link, level, chunk_size",
    [
        ("logit", 0.9, None),  # one chunk
        ("logit", 0.5, 7),  # many chunks, uneven last chunk (120 = 17 * 7 + 1)
        ("probit", 0.9, 16),
    ],
)
def test_score_grid_matches_oracle(link, level, chunk_size):
    post = make_posterior(link=link)
    want = oracle(post, level)
    grid = score_grid(post, level=level, chunk_size=chunk_size)
    got = grid.to_pandas()
    assert len(got) == post.space.num_allowed == len(want)
    assert list(got.columns) == [
        "index",
        "c0",
        "c1",
        "c2",
        "c3",
        "mean",
        "lower",
        "upper",
        "p_best",
    ]
    assert np.all(np.diff(got["mean"].to_numpy()) <= 0)
    g, w = by_index(got), by_index(want)
    np.testing.assert_array_equal(g["index"], w["index"])
    for col in ("mean", "lower", "upper"):
        np.testing.assert_allclose(g[col], w[col], rtol=0, atol=ATOL, err_msg=col)
    np.testing.assert_array_equal(g["p_best"], w["p_best"])
    assert grid.level == level and grid.num_draws == S


def test_labels_follow_codes():
    post = make_posterior()
    df = score_grid(post).to_pandas()
    for row in df.head(5).itertuples():
        assert post.space.index({c: getattr(row, c) for c in post.space.components}) == row.index


@pytest.mark.parametrize("k, chunk_size", [(1, None), (5, 7), (200, 11)])
def test_top_k_equals_full_grid_head(k, chunk_size):
    post = make_posterior(seed=3)
    full = score_grid(post).to_pandas()
    top = score_grid(post, top=k, chunk_size=chunk_size)
    got = top.to_pandas()
    want = full.head(k).reset_index(drop=True)
    assert len(got) == min(k, len(full))
    np.testing.assert_array_equal(got["index"], want["index"])
    np.testing.assert_array_equal(got["p_best"], want["p_best"])
    for col in ("mean", "lower", "upper"):
        np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-7)
    pd.testing.assert_frame_equal(top.top(2), got.head(2))


def test_chunking_does_not_change_results():
    post = make_posterior(seed=4)
    one = score_grid(post).to_pandas()
    many = score_grid(post, chunk_size=3).to_pandas()
    pd.testing.assert_frame_equal(by_index(one), by_index(many), rtol=0, atol=1e-7)


def test_score_layouts_matches_grid_rows_and_keeps_order():
    post = make_posterior(seed=5)
    full = score_grid(post).to_pandas()
    pick = full.iloc[[7, 0, 3]].reset_index(drop=True)
    got = score_layouts(post, None, pick[list(post.space.components)])
    np.testing.assert_array_equal(got["index"], pick["index"])
    np.testing.assert_array_equal(got["p_best"], pick["p_best"])
    for col in ("mean", "lower", "upper"):
        np.testing.assert_allclose(got[col], pick[col], rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "rows, match",
    [
        (
            [{"c0": "v0", "c1": "nope", "c2": "v0", "c3": "v0"}],
            r"layouts: row 1, column 'c1': unknown variant 'nope'",
        ),
        ([{"c0": "v0", "c1": "v1", "c2": "v0"}], r"missing column\(s\) \['c3'\]"),
        (
            [
                {"c0": "v0", "c1": "v1", "c2": "v0", "c3": "v0"},
                {"c0": "v1", "c1": "v1", "c2": "v3", "c3": "v0"},
            ],
            r"layouts: row 2: layout .* is forbidden",
        ),
    ],
)
def test_score_layouts_rejects_bad_layouts(rows, match):
    post = make_posterior()
    with pytest.raises(ValueError, match=match):
        score_layouts(post, None, pd.DataFrame(rows))


def test_best_layout_matches_oracle():
    post = make_posterior(seed=6)
    want = oracle(post).sort_values("mean", ascending=False).iloc[0]
    best = best_layout(post)
    assert best.index == want["index"] and best.exact
    assert post.space.index(best.layout) == best.index
    assert best.mean == pytest.approx(want["mean"], abs=ATOL)
    assert best.lower == pytest.approx(want["lower"], abs=ATOL)
    assert best.upper == pytest.approx(want["upper"], abs=ATOL)
    assert best.p_best == want["p_best"]


def test_parquet_round_trip_and_atomic(tmp_path):
    post = make_posterior(seed=7)
    grid = score_grid(post)
    path = tmp_path / "grid.parquet"
    grid.to_parquet(path)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(
        back, grid.to_pandas(), check_categorical=False, check_dtype=False
    )
    assert os.listdir(tmp_path) == ["grid.parquet"]  # no temp file left behind
    # streaming writer: same rows, in index order
    n = score_grid_to_parquet(post, tmp_path / "stream.parquet", chunk_size=9)
    stream = pd.read_parquet(tmp_path / "stream.parquet")
    assert n == len(stream) == post.space.num_allowed
    want = by_index(grid.to_pandas())
    for col in ("index", "c0", "c3", "p_best"):
        np.testing.assert_array_equal(stream[col].astype(want[col].dtype), want[col])
    np.testing.assert_allclose(stream["mean"], want["mean"], rtol=0, atol=1e-7)
    assert sorted(os.listdir(tmp_path)) == ["grid.parquet", "stream.parquet"]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    grid = score_grid(make_posterior())

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        grid.to_parquet(tmp_path / "g.parquet")
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_huge_space_best_layout_agrees_with_exact_optimiser():
    card = (10,) * 10  # 10^10 layouts
    space = make_space(card, [{"c0": "v0", "c1": "v0"}])
    params = random_params(card, 8, 11, main_scale=0.4, pair_scale=0.1)
    post = Posterior(space=space, prior=PriorConfig(), params=params, method="laplace")
    best = best_layout(post, seed=0)
    assert not best.exact and space.is_allowed(space.encode(best.layout))
    per_draw = argmax_codes(params, space, method="exact", seed=0)  # exact: any seed
    idx = space.indices(per_draw)
    assert best.p_best == np.mean(idx == best.index)
    # no single-component move raises the posterior mean CTR (coordinate-wise optimal)
    x = np.array(space.encode(best.layout))
    rows = []
    for k in range(len(card)):
        for v in range(card[k]):
            y = x.copy()
            y[k] = v
            if space.is_allowed(y):
                rows.append(space.decode(y))
    scores = score_layouts(post, None, pd.DataFrame(rows), best_codes=per_draw)
    assert scores["mean"].max() <= best.mean + 1e-7


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"level": 1.5}, "level must lie in"),
        ({"top": 0}, "top must be a positive integer"),
        ({"space": make_space((2, 2))}, "differs from the space"),
    ],
)
def test_score_grid_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        score_grid(make_posterior(), **kwargs)


def test_full_grid_refused_on_huge_space():
    card = (10,) * 8
    post = Posterior(
        space=make_space(card),
        prior=PriorConfig(),
        params=random_params(card, 2, 0),
        method="laplace",
    )
    with pytest.raises(ValueError, match="pass top=k.*score_grid_to_parquet"):
        score_grid(post)


@pytest.mark.parametrize(
    "max_leaf, step_elems, chunk_size, top", [(10, 80, None, None), (2, 40, 9, 6)]
)
def test_small_leaf_blocks_and_scan_steps_match_oracle(max_leaf, step_elems, chunk_size, top):
    """Many prefixes per call, several scan steps, a partial last call: same as brute force."""
    opts = GridOptions(max_leaf=max_leaf, step_elems=step_elems)
    post = make_posterior(seed=8)
    want = oracle(post).sort_values(["mean", "index"], ascending=[False, True])
    got = score_grid(post, top=top, chunk_size=chunk_size, grid_options=opts).to_pandas()
    want = want.head(len(got)).reset_index(drop=True)
    assert len(got) == (post.space.num_allowed if top is None else top)
    np.testing.assert_array_equal(got["index"], want["index"])
    np.testing.assert_array_equal(got["p_best"], want["p_best"])
    for col in ("mean", "lower", "upper"):
        np.testing.assert_allclose(got[col], want[col], rtol=0, atol=ATOL, err_msg=col)
    best = argmax_codes(
        post.params, post.space, method="enumerate", chunk_size=chunk_size, grid_options=opts
    )
    np.testing.assert_array_equal(best, score_grid(post, top=1).best_codes)


def test_device_sort_path_matches_oracle():
    """The accelerator path (order statistics sorted in the kernel) gives the same grid."""
    post = make_posterior(seed=9)
    opts = GridOptions(host_sort_platforms=())
    got = by_index(score_grid(post, chunk_size=16, grid_options=opts).to_pandas())
    want = by_index(oracle(post))
    np.testing.assert_array_equal(got["index"], want["index"])
    np.testing.assert_array_equal(got["p_best"], want["p_best"])
    for col in ("mean", "lower", "upper"):
        np.testing.assert_allclose(got[col], want[col], rtol=0, atol=ATOL, err_msg=col)
