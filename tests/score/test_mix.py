"""The traffic mix through the grid engine, against brute-force oracles on enumerated spaces.

The mixture CTR of draw s is ``sum_g w_g inv_link(eta_s(x, g))``; the oracle computes it in
float64 numpy from explicit sums over every (draw, layout, segment). The engine sums eta in
float32 (another order), so values agree to float32 rounding: relative 1e-5 on CTRs of a few
percent is ~100 float32 ulps of headroom; P(best) is exact (the draws' argmaxes are far from
ties on these random draws).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

import layoutopt as lo
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params, pair_list
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.score.mix import mix_p_best
from layoutopt.score.shards import merge_shards
from layoutopt.score.target import mixture

SEGMENTS = {"member": ["prime", "non_prime", "guest"]}
SHARES = np.array([0.5, 0.3, 0.2])


def _posterior(card, S, seed, *, rules=(), pairwise=True, link="logit") -> Posterior:
    rng = np.random.default_rng(seed)
    G = len(SEGMENTS["member"])
    space = LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)},
        forbidden=list(rules),
        segments=SEGMENTS,
    )
    pairs = pair_list(len(card)) if pairwise else []
    params = Params(
        jnp.asarray(rng.normal(-3.0, 0.3, S), jnp.float32),
        tuple(jnp.asarray(rng.normal(0, 0.4, (S, n)), jnp.float32) for n in card),
        tuple(
            jnp.asarray(rng.normal(0, 0.2, (S, card[k], card[j])), jnp.float32) for k, j in pairs
        ),
        jnp.asarray(rng.normal(0, 0.2, (S, G)), jnp.float32),
        tuple(jnp.asarray(rng.normal(0, 0.3, (S, G, n)), jnp.float32) for n in card),
    )
    return Posterior(
        space=space,
        prior=PriorConfig(link=link),
        params=params,
        method="nuts",
        segment_shares=SHARES,
    )


def _oracle(post: Posterior, codes: np.ndarray) -> np.ndarray:
    """``(S, n)`` mixture CTR by explicit float64 sums."""
    p = post.params
    ctr = 0.0
    for g, w in enumerate(SHARES):
        eta = (
            np.asarray(p.intercept, np.float64)[:, None]
            + np.asarray(p.segment_intercept)[:, g, None]
        )
        for k in range(codes.shape[1]):
            eta = eta + np.asarray(p.main[k])[:, codes[:, k]]
            eta = eta + np.asarray(p.segment_main[k])[:, g, codes[:, k]]
        for i, (k, j) in enumerate(pair_list(codes.shape[1]) if p.pair else []):
            eta = eta + np.asarray(p.pair[i])[:, codes[:, k], codes[:, j]]
        if post.prior.link == "logit":
            ctr = ctr + w / (1.0 + np.exp(-eta))
        else:
            ctr = ctr + w * ndtr(eta)
    return ctr


def _allowed_codes(space):
    return np.concatenate([c for _, c in space.iter_chunks(4096, allowed_only=True)])


@pytest.fixture(scope="module")
def small():
    # 3 x 4 x 2 x 5 = 120 layouts, two rules; leaf blocks split the space (max_leaf below)
    return _posterior((3, 4, 2, 5), 64, 0, rules=[{"c0": "v1", "c1": "v2"}, {"c3": "v4"}])


def test_mixture_transform_is_the_weighted_ctr():
    rng = np.random.default_rng(1)
    eta = rng.normal(-2.0, 1.0, (3 * 5, 7)).astype(np.float32)  # G=3 segment-major rows, S=5
    got = np.asarray(mixture("logit")(jnp.asarray(eta), jnp.asarray(SHARES)))
    want = sum(
        w / (1 + np.exp(-eta[g * 5 : (g + 1) * 5].astype(np.float64))) for g, w in enumerate(SHARES)
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert mixture("logit") is mixture("logit")  # one function per link: one compilation


@pytest.mark.parametrize("link", ["logit", "probit"])
@pytest.mark.parametrize("max_leaf", [1024, 10])  # one leaf block; several blocks per step
def test_score_grid_of_the_mix_matches_brute_force(link, max_leaf):
    post = _posterior(
        (3, 4, 2, 5), 64, 0, rules=[{"c0": "v1", "c1": "v2"}, {"c3": "v4"}], link=link
    )
    space = post.space
    codes = _allowed_codes(space)
    ctr = _oracle(post, codes)
    grid = lo.score_grid(post, grid_options=lo.grid.GridOptions(max_leaf=max_leaf))
    df = grid.to_pandas().set_index("index")
    idx = space.indices(codes)
    assert len(df) == space.num_allowed == len(codes)
    np.testing.assert_allclose(df.loc[idx, "mean"], ctr.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(df.loc[idx, "lower"], np.quantile(ctr, 0.05, axis=0), rtol=1e-5)
    np.testing.assert_allclose(df.loc[idx, "upper"], np.quantile(ctr, 0.95, axis=0), rtol=1e-5)
    p_best = np.bincount(ctr.argmax(axis=1), minlength=len(codes)) / len(ctr)
    np.testing.assert_allclose(df.loc[idx, "p_best"], p_best, atol=1e-12)
    np.testing.assert_array_equal(grid.best_codes, codes[ctr.argmax(axis=1)])


def test_top_layouts_best_layout_and_p_best_of_the_mix(small):
    space = small.space
    codes = _allowed_codes(space)
    ctr = _oracle(small, codes)
    full = lo.score_grid(small).to_pandas()
    top = lo.score_grid(small, top=5).to_pandas()
    pd.testing.assert_frame_equal(top, full.head(5), rtol=1e-6)
    best = lo.best_layout(small)
    assert best.exact and best.index == int(space.indices(codes)[np.argmax(ctr.mean(axis=0))])
    assert best.p_best == pytest.approx(full["p_best"][0], abs=1e-12)
    scored = lo.score_layouts(small, None, full.sample(7, random_state=0))
    want = full.set_index("index").loc[scored["index"]]
    np.testing.assert_allclose(scored["mean"], want["mean"], rtol=1e-6)
    np.testing.assert_allclose(scored["upper"], want["upper"], rtol=1e-6)
    np.testing.assert_allclose(scored["p_best"], want["p_best"], atol=1e-12)
    got_codes, got_p = mix_p_best(small, space)
    winners, counts = np.unique(codes[ctr.argmax(axis=1)], axis=0, return_counts=True)
    np.testing.assert_array_equal(got_codes, winners)
    np.testing.assert_allclose(got_p, counts / len(ctr), atol=1e-12)


def test_mix_p_best_over_a_restricted_space(small):
    """The proposals maximise over the space minus excluded layouts (extra forbidden rules)."""
    space = small.space
    codes = _allowed_codes(space)
    leader = codes[np.argmax(np.bincount(_oracle(small, codes).argmax(axis=1)))]
    spec = space.to_dict()
    narrower = LayoutSpace(
        spec["components"],
        forbidden=spec["forbidden"] + [space.decode(leader)],
        segments=spec["segments"],
    )
    kept = _allowed_codes(narrower)
    ctr = _oracle(small, kept)
    got_codes, got_p = mix_p_best(small, narrower)
    winners, counts = np.unique(kept[ctr.argmax(axis=1)], axis=0, return_counts=True)
    np.testing.assert_array_equal(got_codes, winners)
    np.testing.assert_allclose(got_p, counts / len(ctr), atol=1e-12)
    assert not (got_codes == leader).all(axis=1).any()


@pytest.mark.parametrize("n", [1, 3, 7])
def test_mix_streams_to_parquet_and_shards_merge_exactly(small, tmp_path, n):
    whole = tmp_path / "whole.parquet"
    rows = lo.score_grid_to_parquet(small, whole, chunk_size=16)
    streamed = pd.read_parquet(whole)
    assert rows == len(streamed) == small.space.num_allowed
    assert np.all(np.diff(streamed["index"]) > 0)  # index order, like every streamed pass
    grid = lo.score_grid(small).to_pandas().set_index("index").loc[streamed["index"]]
    for col in ("mean", "lower", "upper", "p_best"):
        np.testing.assert_allclose(streamed[col], grid[col], rtol=1e-6, atol=1e-12)
    parts = [tmp_path / f"part-{i}.parquet" for i in range(n)]
    for i, p in enumerate(parts):
        lo.score_grid_to_parquet(small, p, shard=(i, n))
    merged = tmp_path / "merged.parquet"
    merge_shards(parts, merged)
    pd.testing.assert_frame_equal(pd.read_parquet(merged), streamed)


def test_mix_shards_do_not_merge_with_one_segments_shards(small, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    lo.score_grid_to_parquet(small, a, shard=(0, 2))
    lo.score_grid_to_parquet(small, b, shard=(1, 2), segment={"member": "guest"})
    with pytest.raises(ValueError, match="posterior"):
        merge_shards([a, b], tmp_path / "m.parquet")


@pytest.mark.slow
def test_mix_above_the_old_two_to_the_twenty_cap():
    """1,245,184 allowed layouts (the old MAX_MIX_LAYOUTS was 2^20 = 1,048,576): scored."""
    card = (5, 4, 4, 4, 4, 4, 4, 4, 4, 4)
    post = _posterior(card, 2, 7, rules=[{"c0": "v0", "c1": "v0"}], pairwise=False)
    space = post.space
    assert space.num_allowed == 1_245_184 > 2**20
    grid = lo.score_grid(post, top=3, chunk_size=2**16)
    codes = space.codes_range(0, space.size)
    codes = codes[space.allowed_mask(codes)]
    ctr = _oracle(post, codes)
    mean = ctr.mean(axis=0)
    order = np.argsort(-mean, kind="stable")[:3]
    np.testing.assert_array_equal(grid.codes, codes[order])
    np.testing.assert_allclose(grid.mean, mean[order], rtol=1e-5)
    np.testing.assert_array_equal(grid.best_codes, codes[ctr.argmax(axis=1)])
    best = lo.best_layout(post)
    assert best.exact and best.index == int(space.indices(codes[order[:1]])[0])
