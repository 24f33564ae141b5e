"""Shared helpers of the benchmark scripts (not part of the library)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import layoutopt as lo
from layoutopt.data.observations import layout_codes
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params, logits, pair_list
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace

README = Path(__file__).with_name("README.md")


def machine() -> str:
    """One line naming CPU model, cores, jax version and device."""
    model = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, jax {jax.__version__}, device {jax.devices()[0]}, "
        f"load avg {os.getloadavg()[0]:.1f}"
    )


def random_params(card, S, seed, main_scale=0.3, pair_scale=0.1, base=-3.0) -> Params:
    """Random draws with realistic scales (main effects ~0.3, interactions ~0.1 logits)."""
    rng = np.random.default_rng(seed)
    return Params(
        jnp.asarray(rng.normal(base, 0.1, S), jnp.float32),
        tuple(jnp.asarray(rng.normal(0, main_scale, (S, n)), jnp.float32) for n in card),
        tuple(
            jnp.asarray(rng.normal(0, pair_scale, (S, card[k], card[j])), jnp.float32)
            for k, j in pair_list(len(card))
        ),
    )


def make_space(card) -> LayoutSpace:
    return LayoutSpace({f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)})


def posterior(card, S, seed=0) -> Posterior:
    return Posterior(
        space=make_space(card),
        prior=PriorConfig(),
        params=random_params(card, S, seed),
        method="laplace",
    )


def laplace_posterior(card, S, tested=None):
    """A Laplace fit with S draws: the pairwise initial design of the space (and, with
    ``tested``, random further layouts up to that many distinct ones, as a long campaign
    accumulates), 5,000 impressions per layout, clicks drawn from random true effects
    (seeded)."""
    space = make_space(card)
    design = lo.initial_design(space, seed=0)
    if tested is not None and tested > len(design):
        design = lo.initial_design(space, seed=0, size=tested)
    truth = random_params(card, 1, seed=1)
    eta = np.asarray(jax.vmap(logits, in_axes=(0, None))(truth, layout_codes(design, space)))[0]
    frame = design[list(space.components)].copy()
    frame["impressions"] = 5000
    frame["clicks"] = np.random.default_rng(2).binomial(5000, 1.0 / (1.0 + np.exp(-eta)))
    obs = lo.Observations.from_frame(frame, space)
    return lo.fit(space, obs, method="laplace", seed=3, num_samples=S)


def record(title: str, command: str, table: str) -> None:
    """Append a measured table to benchmarks/README.md."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"\n### {title} ({stamp})\n\n`{command}`\n\nMachine: {machine()}\n\n{table}\n"
    with open(README, "a") as fh:
        fh.write(block)
    print(block)


def publish(name: str, table: str, record_it: bool) -> None:
    """Print ``table``, or append it to README.md under ``name`` with the command that ran."""
    if record_it:
        command = f"python benchmarks/{name}.py " + " ".join(sys.argv[1:])
        record(name, command.rstrip(), table)
    else:
        print(table)
