"""The ``layoutopt`` script's persistent compilation cache: a second process compiles nothing.

The fits run as separate processes (``python -m layoutopt``, what the script runs), since
the cache is what carries compiled programs from one process to the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from layoutopt.cli.cache import cache_dir

ROOT = Path(__file__).resolve().parents[2]

SPACE = """\
[components]
headline = ["Free delivery", "Members save", "Try it free"]
image = ["van", "box"]
"""
# clicks per 4,000 impressions of each (headline, image)
CLICKS = {
    ("Free delivery", "van"): 160,
    ("Free delivery", "box"): 200,
    ("Members save", "van"): 360,
    ("Members save", "box"): 180,
    ("Try it free", "van"): 140,
}


# long-running (multi-process, sampling or compile-heavy): `pytest -m slow`, run by .ci/run
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cache")
    (d / "space.toml").write_text(SPACE)
    lines = ["headline,image,impressions,clicks"]
    lines += [f"{h},{i},4000,{c}" for (h, i), c in CLICKS.items()]
    (d / "obs.csv").write_text("\n".join(lines) + "\n")
    return d


def _fit(inputs: Path, cache: Path, *extra: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LAYOUTOPT_CACHE_DIR=str(cache))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    argv = [*extra, "fit", "-s", "space.toml", "-d", "obs.csv", "-o", "post.nc"]
    result = subprocess.run(
        [sys.executable, "-m", "layoutopt", *argv],
        cwd=inputs,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (inputs / "post.nc").is_file()


def _entries(cache: Path) -> set[str]:
    return {p.name for p in cache.rglob("*") if p.is_file()} if cache.exists() else set()


def test_second_fit_compiles_nothing(inputs, tmp_path):
    cache = tmp_path / "jax-cache"
    _fit(inputs, cache)
    first = _entries(cache)
    # the Laplace fit's kernel, at least, is a compiled program of its own
    assert any(name.startswith("jit_") for name in first), first
    _fit(inputs, cache)
    # every program of the second process was read from the cache: no entry was added
    assert _entries(cache) == first


def test_no_cache_option_writes_nothing(inputs, tmp_path):
    cache = tmp_path / "unused"
    _fit(inputs, cache, "--no-cache")
    assert _entries(cache) == set()


@pytest.mark.parametrize("value", ["off", "OFF", "0", "none"])
def test_cache_dir_off(value):
    assert cache_dir({"LAYOUTOPT_CACHE_DIR": value}) is None


def test_cache_dir_default_and_moved(tmp_path):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("XDG_CACHE_HOME is the Linux convention")
    assert cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "layoutopt" / "jax"
    moved = tmp_path / "elsewhere"
    assert cache_dir({"LAYOUTOPT_CACHE_DIR": str(moved), "XDG_CACHE_HOME": "/x"}) == moved
