"""The commands that play the campaign driver against a synthetic world: ``simulate``, ``demo``.

Both run :func:`layoutopt.sim.simulate.run_campaign` with a callback that advances a progress
bar or fills the table of rounds; the world's truth is what lets them print regret.
"""

from __future__ import annotations

import math
import sys
import time
from enum import StrEnum
from typing import Annotated

import numpy as np
import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from layoutopt.cli import library
from layoutopt.cli.console import status, stderr, stdout
from layoutopt.cli.options import Method, SeedOpt
from layoutopt.cli.tables import best_table, fmt_rate, layout_text, regret_table, scores_table

__all__ = ["CAMPAIGN_POLICIES", "CampaignStrategy", "Preset", "demo", "simulate"]


#: The policies ``simulate`` plays, by name: a :mod:`layoutopt.decide.policies` factory
#: (model policies: k=8, the world's link), read when the command runs.
CAMPAIGN_POLICIES = ("thompson", "top_two", "ids", "greedy", "ucb", "uniform", "independent")


CampaignStrategy = StrEnum("CampaignStrategy", {s: s for s in CAMPAIGN_POLICIES})


class Preset(StrEnum):
    """Synthetic worlds for ``simulate``."""

    hill2017 = "hill2017"
    demo = "demo"


def simulate(
    preset: Annotated[Preset, typer.Option("--preset", help="Synthetic world.")] = (
        Preset.hill2017
    ),
    strategies: Annotated[
        list[CampaignStrategy] | None,
        typer.Option(
            "--strategy",
            help="Strategy to play; repeat to compare (default: thompson and uniform).",
        ),
    ] = None,
    budget: Annotated[int, typer.Option("--budget", min=1, help="Total impressions.")] = 20_000,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Impressions per round.")
    ] = 1_000,
    seed: SeedOpt = 0,
    method: Annotated[Method, typer.Option("--method", "-m", help="Inference method.")] = (
        Method.laplace
    ),
    samples: Annotated[
        int, typer.Option("--samples", min=1, help="Posterior draws per fit.")
    ] = 500,
) -> None:
    """Play campaigns against a synthetic world with known truth and print their regret."""

    world_of = library.simulate.SyntheticWorld
    world = world_of.hill2017(seed) if preset is Preset.hill2017 else world_of.demo()
    names = [s.value for s in strategies] if strategies else ["thompson", "uniform"]
    rounds = math.ceil(budget / batch_size)
    results = []
    t0 = time.perf_counter()
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rounds"),
        TimeElapsedColumn(),
        console=stderr(),
        redirect_stdout=False,  # stdout carries only the result table
        disable=not sys.stderr.isatty(),  # a bar redrawn into a log file floods it
    )
    with progress:
        task = progress.add_task("simulating", total=rounds * len(names))
        for name in names:
            progress.update(task, description=f"simulating {name}")
            policy = _campaign_policy(name, batch_size, method.value, samples, world.link)
            results.append(
                library.simulate.run_campaign(
                    world,
                    policy=policy,
                    budget=budget,
                    batch_size=batch_size,
                    seed=seed,
                    callback=lambda info, rec: progress.advance(task),
                )
            )
    if progress.disable:  # no bar off a terminal: one line once done, for the log
        done = int(progress.tasks[0].completed)
        stderr().print(
            f"simulated {', '.join(names)}: {done}/{rounds * len(names)} rounds in "
            f"{time.perf_counter() - t0:.1f}s"
        )
    best_world = world.best()
    out = stdout()
    out.print(
        f"world: {preset.value} (seed {seed}), {world.space.num_allowed:,} allowed layouts, "
        f"true best CTR {fmt_rate(best_world.ctr)}"
    )
    out.print(regret_table(results, budget, batch_size))


def _campaign_policy(name: str, batch_size: int, method: str, samples: int, link: str):
    if name == "uniform":
        return library.policies.uniform()
    if name == "independent":
        return library.policies.independent(draws_per_round=batch_size)
    return getattr(library.policies, name)(k=8, method=method, num_samples=samples, link=link)


_ROUND_COLUMNS = (
    "round",
    "served to",
    "layouts tested",
    "impressions",
    "pick",
    "mean CTR [90% interval]",
    "P(best)",
    "true CTR",
    "true rank",
)


def demo(
    seed: SeedOpt = 0,
    method: Annotated[Method, typer.Option("--method", "-m", help="Inference method.")] = (
        Method.laplace
    ),
    impressions: Annotated[
        int, typer.Option("--impressions", min=1, help="Impressions served per round.")
    ] = 40_000,
    rounds: Annotated[
        int, typer.Option("--rounds", min=0, help="Thompson-sampling rounds after the design.")
    ] = 3,
    k: Annotated[int, typer.Option("--k", min=1, help="Layouts proposed per round.")] = 8,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Posterior draws.")] = 1000,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the top-layouts table.")] = 10,
) -> None:
    """End-to-end example on a built-in Prime-style callout space with a known ground truth.

    The campaign driver plays Thompson sampling against the demo world
    (``SyntheticWorld.demo()``): round 0 tests a pairwise design, each later round refits the
    model and tests k proposed layouts. After every round the pick (highest posterior mean
    CTR) is compared with the truth, which only a simulation knows.
    """
    t_start = time.perf_counter()
    out = stdout()
    world = library.simulate.SyntheticWorld.demo()
    space = world.space
    sizes = ", ".join(
        f"{c} {n}" for c, n in zip(space.components, space.cardinalities, strict=True)
    )
    out.print(
        f"Layout space: {space.num_components} components ({sizes}), "
        f"{space.size:,} layouts, {space.num_allowed:,} allowed "
        f"({len(space.forbidden)} forbidden rule)"
    )
    allowed_index = np.concatenate([i for i, _ in _allowed_indices(space)])
    true_ctr = world.ctr_of_index(allowed_index)
    table = Table(title="Rounds", title_justify="left", box=box.SIMPLE_HEAD)
    for name in _ROUND_COLUMNS:
        table.add_column(name, justify="left" if name == "served to" else "right", no_wrap=True)
    last = []

    def show(info, record) -> None:
        ctr = float(world.ctr_of_index([info.pick])[0])
        table.add_row(
            str(info.round),
            "pairwise design" if info.round == 0 else f"thompson, k={k}",
            f"{record.num_tested:,}",
            f"{record.impressions:,}",
            str(info.pick),
            f"{fmt_rate(info.mean)} [{fmt_rate(info.lower)}, {fmt_rate(info.upper)}]",
            f"{info.p_best:.3f}",
            fmt_rate(ctr),
            f"{int(np.sum(true_ctr > ctr)) + 1}",
        )
        last[:] = [info, record]

    policy = library.policies.thompson(k=k, method=method.value, num_samples=samples)
    with status(f"playing {rounds + 1} rounds ({method.value} fits)"):
        library.simulate.run_campaign(
            world,
            policy=policy,
            budget=impressions * (rounds + 1),
            batch_size=impressions,
            seed=seed,
            callback=show,
        )
    info, record = last
    out.print(
        f"Round 0 tests a pairwise design (every variant pair at least once); each later round "
        f"tests up to {k} layouts proposed by Thompson sampling.\n{impressions:,} impressions "
        f"per round. The pick is the layout with the highest posterior mean CTR."
    )
    out.print(table)
    record_ = {
        "layout": space.layout(info.pick),
        "index": info.pick,
        "mean": info.mean,
        "lower": info.lower,
        "upper": info.upper,
        "p_best": info.p_best,
        "exact": True,  # the demo space is enumerated
    }
    truth = world.best()
    pick_ctr = float(world.ctr_of_index([info.pick])[0])
    out.print(best_table(record_, level=0.9, true_ctr=pick_ctr))
    out.print(
        f"True best layout: CTR {fmt_rate(truth.ctr)} ({layout_text(truth.layout)}). "
        f"The pick's regret is {fmt_rate(truth.ctr - pick_ctr)}; it was "
        f"{'tested' if record.pick_tested else 'never tested'}, and "
        f"{record.num_tested} of {space.num_allowed:,} layouts were."
    )
    frame = library.scoring.score_grid(info.posterior, space, top=top).top(top)
    frame["true_ctr"] = world.ctr_of_index(frame["index"].to_numpy())
    out.print(
        scores_table(
            frame, f"Top {len(frame)} of {space.num_allowed:,} layouts", 0.9, space.components
        )
    )
    stderr().print(f"demo finished in {time.perf_counter() - t_start:.1f}s")


def _allowed_indices(space):
    for _, codes in space.iter_chunks():
        yield space.indices(codes), codes
