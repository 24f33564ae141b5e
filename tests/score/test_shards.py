"""Sharded full-grid scoring: n slices merged equal the unsharded file, row for row."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import random_draws

from layoutopt.cli.app import main
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.score.grid import plan
from layoutopt.score.scoring import score_grid, score_grid_to_parquet
from layoutopt.score.shards import merge_shards, parse_shard, shard_range

# 9 x 7 x 5 x 6 x 4 x 8 = 60,480 layouts: leaf blocks of 5 x 6 x 4 x 8 = 960, 63 prefixes
CARD = (9, 7, 5, 6, 4, 8)
RULES = [{"c0": "v2", "c3": "v1"}, {"c1": "v4"}, {"c0": "v8", "c5": "v0", "c2": "v3"}]
S = 16


def make_posterior(params: Params) -> Posterior:
    space = LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(CARD)}, forbidden=RULES
    )
    return Posterior(space=space, prior=PriorConfig(), params=params, method="laplace")


@pytest.fixture(scope="module")
def post() -> Posterior:
    return make_posterior(random_draws(CARD, S, 3, base=-3.0, main_scale=0.3, pair_scale=0.1))


@pytest.fixture(scope="module")
def tied() -> Posterior:
    """c0 has no effect at all: every draw's best layout comes in 9 exactly tied copies, one
    per value of c0, i.e. in 9 different leaf blocks (and shards)."""
    p = random_draws(CARD, S, 4, base=-3.0, main_scale=0.3, pair_scale=0.1)
    main = (jnp.zeros_like(p.main[0]),) + p.main[1:]
    pair = tuple(jnp.zeros_like(t) if i < len(CARD) - 1 else t for i, t in enumerate(p.pair))
    return make_posterior(Params(p.intercept, main, pair))


def sharded(post, tmp_path, n, **kw) -> pd.DataFrame:
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"part-{i}.parquet")
        score_grid_to_parquet(post, paths[-1], shard=(i, n), chunk_size=4000)
    out = tmp_path / f"merged-{n}.parquet"
    rows = merge_shards(paths[::-1], out, **kw)  # any order
    frame = pd.read_parquet(out)
    assert rows == len(frame)
    return frame


def test_shards_tile_the_index_range(post):
    Np = plan(post.space.cardinalities).num_prefixes
    assert Np == 63
    for n in (1, 2, 5, 63, 100):
        ranges = [shard_range(post.space, (i, n)) for i in range(n)]
        assert ranges[0][0] == 0 and ranges[-1][1] == Np
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


@pytest.mark.parametrize("n", [1, 4, 63, 70])  # 70 > 63 leaf blocks: some shards are empty
def test_merged_shards_equal_the_unsharded_file(post, tmp_path, n):
    whole = tmp_path / "whole.parquet"
    score_grid_to_parquet(post, whole, argmax_method="enumerate")
    want = pd.read_parquet(whole)
    got = sharded(post, tmp_path, n)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["p_best"].sum() == pytest.approx(1.0)
    assert len(want) == post.space.num_allowed


def test_exact_ties_across_shards_go_to_the_lowest_index(tied, tmp_path):
    got = sharded(tied, tmp_path, 9)
    grid = score_grid(tied)
    want = grid.to_pandas().sort_values("index", kind="stable").reset_index(drop=True)
    np.testing.assert_array_equal(got["index"], want["index"])
    np.testing.assert_array_equal(got["p_best"], want["p_best"])
    # every winner has c0 = v0: the lowest of its 9 tied copies, all in shards 0 (of 9)
    winners = got[got["p_best"] > 0]
    assert (winners["c0"] == "v0").all() and winners["p_best"].sum() == pytest.approx(1.0)


def test_merge_top_k_equals_score_grid_top(post, tmp_path):
    got = sharded(post, tmp_path, 5, top=25)
    want = score_grid(post, top=25).to_pandas()
    np.testing.assert_array_equal(got["index"], want["index"])
    np.testing.assert_array_equal(got["mean"], want["mean"])
    np.testing.assert_array_equal(got["p_best"], want["p_best"])
    # the top-k intervals come from a second pass over the kept codes (same float32 sums)
    np.testing.assert_allclose(got[["lower", "upper"]], want[["lower", "upper"]], atol=1e-7)


def test_merge_refuses_incomplete_or_foreign_shards(post, tied, tmp_path):
    a = [tmp_path / f"a{i}.parquet" for i in range(3)]
    for i, p in enumerate(a):
        score_grid_to_parquet(post, p, shard=(i, 3))
    b = tmp_path / "b1.parquet"
    score_grid_to_parquet(tied, b, shard=(1, 3))
    out = tmp_path / "m.parquet"
    with pytest.raises(ValueError, match=r"shards \[2\] of 3 are missing"):
        merge_shards(a[:2], out)
    with pytest.raises(ValueError, match="shard 1/3 given twice"):
        merge_shards(a + [a[1]], out)
    with pytest.raises(ValueError, match="posterior=.* differs"):
        merge_shards([a[0], b, a[2]], out)
    whole = tmp_path / "whole.parquet"
    score_grid_to_parquet(post, whole)
    with pytest.raises(ValueError, match="not a shard file"):
        merge_shards([whole], out)
    with pytest.raises(ValueError, match="top must be a positive integer"):
        merge_shards(a, out, top=0)
    assert not out.exists()


@pytest.mark.parametrize("text", ["3/3", "-1/2", "a/b", "1", "1/2/3", "0/0"])
def test_bad_shard_spec(text):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_cli_shard_and_merge(post, tmp_path, capsys):
    pfile = tmp_path / "post.nc"
    post.save(pfile)
    parts = []
    for i in range(3):
        parts.append(tmp_path / f"p{i}.parquet")
        assert main(["score", "-p", str(pfile), "-o", str(parts[-1]), "--shard", f"{i}/3"]) == 0
    out = tmp_path / "grid.parquet"
    assert main(["score", "--merge", *map(str, parts), "-o", str(out)]) == 0
    whole = tmp_path / "whole.parquet"
    score_grid_to_parquet(post, whole, argmax_method="enumerate")
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(whole), check_exact=True)
    capsys.readouterr()
    code = main(["score", "--merge", *map(str, parts[:2]), "-o", str(tmp_path / "x.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: shards [2] of 3 are missing")
    assert "Traceback" not in err and not (tmp_path / "x.parquet").exists()
    code = main(["score", "-p", str(pfile), "-o", str(tmp_path / "y.parquet"), "--shard", "3/3"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: shard (i, n) needs 0 <= i < n")
