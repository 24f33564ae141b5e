"""Shared fixtures: a tiny layout space with a known ground truth and data drawn from it."""

from __future__ import annotations

import os

# CLI tests read rich tables; a fixed wide console keeps them independent of the terminal
# (pytest-xdist workers and long temporary paths would otherwise wrap lines).
os.environ.setdefault("COLUMNS", "200")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from layoutopt.data.observations import Observations
from layoutopt.infer.fitting import NutsOptions, SviOptions
from layoutopt.model.core import Params, inv_link, logits, pair_list
from layoutopt.model.space import LayoutSpace


def make_truth(cardinalities, seed, base_rate=0.05, main_sd=0.3, pair_sd=0.15) -> Params:
    """Known effects: b0 at ``logit(base_rate)``, Gaussian main and pair tables."""
    rng = np.random.default_rng(seed)
    return Params(
        np.float32(np.log(base_rate / (1.0 - base_rate))),
        tuple(rng.normal(0.0, main_sd, n).astype(np.float32) for n in cardinalities),
        tuple(
            rng.normal(0.0, pair_sd, (cardinalities[k], cardinalities[j])).astype(np.float32)
            for k, j in pair_list(len(cardinalities))
        ),
    )


def random_draws(
    card, S, seed, base, main_scale=0.5, pair_scale=0.2, intercept_sd=0.3, pairwise=True
) -> Params:
    """The tests' one random-``Params`` generator (float32 JAX arrays).

    ``S`` draws on a leading axis, or unbatched parameters (scalar intercept) for
    ``S=None``; intercepts ~ N(base, intercept_sd), main effects ~ N(0, main_scale), pair
    effects ~ N(0, pair_scale) (none when ``pairwise`` is False).
    """
    rng = np.random.default_rng(seed)
    lead = () if S is None else (S,)
    return Params(
        jnp.asarray(rng.normal(base, intercept_sd, lead), jnp.float32),
        tuple(jnp.asarray(rng.normal(0, main_scale, lead + (n,)), jnp.float32) for n in card),
        tuple(
            jnp.asarray(rng.normal(0, pair_scale, lead + (card[k], card[j])), jnp.float32)
            for k, j in pair_list(len(card))
        )
        if pairwise
        else (),
    )


def numpy_eta(params, codes) -> np.ndarray:
    """The tests' one eta oracle: the model equation in float64 numpy, independent of JAX.

    Returns ``(S, N)`` for batched ``params`` (leading draw axis), ``(N,)`` for unbatched.
    """
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    codes = np.asarray(codes)
    eta = np.zeros(np.shape(p.intercept) + (len(codes),)) + np.asarray(p.intercept)[..., None]
    for k, m in enumerate(p.main):
        eta += m[..., codes[:, k]]
    pairs = pair_list(len(p.main)) if p.pair else []  # additive: no pair tables
    for (k, j), t in zip(pairs, p.pair, strict=True):
        eta += t[..., codes[:, k], codes[:, j]]
    return eta


def simulate_observations(space, truth, codes, impressions, seed, link="logit") -> Observations:
    """Binomial clicks at the true CTR of each layout in ``codes``."""
    rng = np.random.default_rng(seed)
    codes = np.asarray(codes, np.int32)
    ctr = np.asarray(inv_link(logits(truth, codes), link), np.float64)
    imps = np.broadcast_to(np.asarray(impressions, np.int64), (len(codes),))
    return Observations.from_codes(space, codes, imps, rng.binomial(imps, ctr))


@pytest.fixture(scope="session")
def tiny_space() -> LayoutSpace:
    """18 layouts; labels with a space and punctuation exercise name handling."""
    return LayoutSpace(
        {
            "headline": ["h1", "h2", "h3"],
            "hero image": ["cat photo", "dog/photo"],
            "reviews": ["none", "stars", "quote"],
        }
    )


@pytest.fixture(scope="session")
def tiny_truth(tiny_space) -> Params:
    """Ground-truth effects on ``tiny_space`` (seed 1)."""
    return make_truth(tiny_space.cardinalities, seed=1)


@pytest.fixture(scope="session")
def tiny_obs(tiny_space, tiny_truth) -> Observations:
    """14 of the 18 layouts observed, 4000 impressions each (~200 clicks)."""
    rng = np.random.default_rng(2)
    idx = np.sort(rng.choice(tiny_space.size, 14, replace=False))
    return simulate_observations(tiny_space, tiny_truth, tiny_space.codes(idx), 4000, seed=3)


# Settings shared by the tests that compare methods; NUTS is kept small (2 x 200 warm-up
# x 200 draws on the 30-parameter tiny model) so the whole comparison runs in seconds.
FIT_SETTINGS = {
    "laplace": {"num_samples": 2000},
    "nuts": {
        "num_samples": 400,
        "num_chains": 2,
        "num_warmup": 200,
        # sequential chains: these short runs' ESS thresholds were set with them (the
        # vectorized default's other draws gave min ESS 74 < 100 at this seed)
        "options": NutsOptions(target_accept_prob=0.95, chain_method="sequential"),
    },
    "svi": {"num_samples": 2000, "options": SviOptions(num_steps=2000)},
}


@pytest.fixture(scope="session")
def tiny_fits(tiny_space, tiny_obs):
    """``tiny_fits(method)``: the posterior of ``tiny_obs`` by ``method`` (computed once).

    FitWarnings (e.g. a few divergences of the short NUTS run) are recorded in
    ``posterior.diagnostics["warnings"]`` rather than raised, so tests can judge them.
    """
    import warnings

    from layoutopt.infer.fitting import FitWarning, fit

    cache = {}

    def get(method):
        if method not in cache:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FitWarning)
                post = fit(tiny_space, tiny_obs, method=method, seed=0, **FIT_SETTINGS[method])
            post.diagnostics["warnings"] = [str(w.message) for w in caught]
            cache[method] = post
        return cache[method]

    return get


# ----------------------------------------------------------------- campaign stores (issue 9)
POSTGRES_BIN = "/usr/lib/postgresql/15/bin"


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL 15 server on a temporary directory and a free port, for the session.

    ``initdb`` refuses to run as root, so the server runs as the ``postgres`` user when the
    tests run as root. Where the server cannot start the tests skip, except on CI
    (``CI=true``), where they fail: CI must not silently skip the PostgreSQL tests.

    Yields:
        ``postgresql://postgres@127.0.0.1:PORT`` (no database part).
    """
    import os
    import shutil
    import socket
    import subprocess
    import tempfile
    from pathlib import Path

    def unavailable(why: str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL server could not be started on CI: {why}")
        pytest.skip(f"PostgreSQL server not available: {why}")

    bindir = Path(POSTGRES_BIN)
    if not (bindir / "initdb").exists():
        unavailable(f"{bindir}/initdb not found")
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:
        unavailable("psycopg is not installed")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="layoutopt-pg-"))
    os.chmod(base, 0o777)  # the postgres user writes here
    data = base / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*args):
        return subprocess.run(as_pg + list(args), capture_output=True, text=True, timeout=120)

    started = False
    try:
        res = run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if res.returncode != 0:
            unavailable(f"initdb failed: {res.stderr.strip()[-300:]}")
        opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        res = run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if res.returncode != 0:
            log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
            unavailable(f"pg_ctl start failed: {(res.stderr + log).strip()[-300:]}")
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_server, request):
    """A fresh, empty database on :func:`postgres_server`; its URL."""
    import re

    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request, tmp_path):
    """A campaign store target: a SQLite file path, or a fresh PostgreSQL database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "campaign.db")
    return request.getfixturevalue("postgres_db")
