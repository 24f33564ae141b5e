"""The ``layoutopt`` command line: parse arguments, call the library, print.

Subcommands mirror the API (DESIGN.md)::

    layoutopt demo                                         built-in end-to-end example
    layoutopt design   --space S [--size N] [--kind K] [-o design.csv]
    layoutopt fit      --space S --data D [--method M] -o posterior.nc
    layoutopt score    --posterior P [-o grid.parquet|grid.csv] [--top K]
    layoutopt best     --posterior P [--json]
    layoutopt propose  --posterior P [--k 8] [--strategy S] [--exclude F] [-o next.csv]
    layoutopt simulate [--preset hill2017] [--strategy S ...] [--budget N]

Conventions: data goes to stdout only when no ``-o`` file is given (then it is plain CSV or
JSON); tables for people, progress and status lines go to stdout/stderr via rich. Every
failure is one line ``error: <message>`` on stderr with a non-zero exit status (2 for bad
usage or input), never a traceback, and never a partial output file: files are written to a
temporary name and renamed (:mod:`layoutopt.util.io`).

:func:`main` takes ``argv`` and returns the exit status, so tests call it in-process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from layoutopt.cli import campaign as cli_campaign
from layoutopt.data.observations import Observations, read_layout_codes
from layoutopt.decide import policies
from layoutopt.decide.design import DESIGN_KINDS, initial_design
from layoutopt.decide.proposals import STRATEGIES
from layoutopt.decide.proposals import propose as propose_layouts
from layoutopt.infer.fitting import METHODS
from layoutopt.infer.fitting import fit as fit_model
from layoutopt.infer.posterior import Posterior
from layoutopt.model.delay import parse_delay
from layoutopt.model.space import LayoutSpace
from layoutopt.score.scoring import MAX_FULL_GRID, best_layout, score_grid, score_grid_to_parquet
from layoutopt.score.segments import best_by_segment
from layoutopt.score.shards import merge_shards, parse_shard
from layoutopt.sim.simulate import SyntheticWorld, run_campaign
from layoutopt.util.io import atomic_path, check_output_path, one_line
from layoutopt.util.limits import SEED_MAX, check_seed

__all__ = ["app", "main", "app_main"]

_LABEL_WIDTH = 22  # variant labels are cut to this many characters in tables

# Exit statuses.
EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected internal error or an OS failure
EXIT_USAGE = 2  # bad arguments or bad input files


# Choices come from the library's own lists, so the CLI cannot drift from the API.
Method = StrEnum("Method", {m: m for m in METHODS})
DesignKind = StrEnum("DesignKind", {k: k for k in DESIGN_KINDS})
Strategy = StrEnum("Strategy", {s: s for s in STRATEGIES})
#: The policies ``simulate`` plays, by name (model policies: k=8, the world's link).
CAMPAIGN_POLICIES = {
    "thompson": policies.thompson,
    "top_two": policies.top_two,
    "greedy": policies.greedy,
    "ucb": policies.ucb,
    "uniform": None,
    "independent": None,
}
CampaignStrategy = StrEnum("CampaignStrategy", {s: s for s in CAMPAIGN_POLICIES})


class Preset(StrEnum):
    """Synthetic worlds for ``simulate``."""

    hill2017 = "hill2017"
    demo = "demo"


app = typer.Typer(
    name="layoutopt",
    help="Find the best callout layout in a combinatorial space: design a test, fit the "
    "Bayesian additive + pairwise click-through model, score every layout, propose what to "
    "test next.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# ------------------------------------------------------------------------------ helpers
def _stdout() -> Console:
    # Created per call so that a redirected sys.stdout (tests, pipes) is honoured; wide when
    # not a terminal so tables are not wrapped in logs or READMEs.
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=150)
    return console


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


@contextlib.contextmanager
def _status(message: str, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr while a long step runs (only on a terminal), then a done line."""
    err = _stderr()
    t0 = time.perf_counter()
    if enabled and err.is_terminal:
        with err.status(message):
            yield
    else:
        yield
    err.print(f"{message} done in {time.perf_counter() - t0:.1f}s")


def _load_posterior(path: Path):

    try:
        return Posterior.load(path)
    except ValueError:  # already names the file
        raise
    except Exception as err:  # h5netcdf / xarray raise many types for a foreign file
        raise ValueError(
            f"{path}: not a readable posterior file ({type(err).__name__}: {one_line(err)})"
        ) from None


def _write_table(frame, path: Path | None) -> None:
    """Write a DataFrame as CSV/Parquet by suffix (atomically), or CSV to stdout."""

    if path is None:
        frame.to_csv(sys.stdout, index=False)
        return
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)


def _check_table_output(path: Path | None) -> Path | None:

    return None if path is None else check_output_path(path, (".csv", ".parquet", ".pq"))


def _fmt_rate(x: float) -> str:
    return f"{100.0 * float(x):.2f}%"


def _scores_table(frame, title: str, level: float, labels: Sequence[str]) -> Table:
    """A rich table of scored layouts (``to_pandas`` columns, optionally ``true_ctr``).

    One line per layout: long variant labels are cut with an ellipsis, and the interval is
    shown next to the mean.
    """
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right")
    for name in labels:
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=_LABEL_WIDTH)
    # numbers never wrap or shrink; the label columns give way instead
    table.add_column(
        f"mean CTR [{level:.0%} interval]", justify="right", no_wrap=True, min_width=23
    )
    table.add_column("P(best)", justify="right", no_wrap=True, min_width=7)
    truth = "true_ctr" in frame.columns
    if truth:
        table.add_column("true CTR", justify="right", no_wrap=True, min_width=8)
    for rank, row in enumerate(frame.to_dict("records"), start=1):
        cells = [str(rank)] + [str(row[name]) for name in labels]
        cells.append(
            f"{_fmt_rate(row['mean'])} [{_fmt_rate(row['lower'])}, {_fmt_rate(row['upper'])}]"
        )
        cells.append(f"{row['p_best']:.3f}")
        if truth:
            cells.append(_fmt_rate(row["true_ctr"]))
        table.add_row(*cells)
    return table


# ----------------------------------------------------------------------------- commands
SpaceOpt = Annotated[
    Path,
    typer.Option(
        "--space",
        "-s",
        help="Layout space TOML file (components, forbidden rules), e.g. "
        "layoutopt/examples/demo_space.toml.",
    ),
]
PosteriorOpt = Annotated[
    Path, typer.Option("--posterior", "-p", help="Posterior NetCDF file written by `fit`.")
]


def _seed_option(value: int) -> int:
    # The library's rule and message, so the CLI and the API cannot drift apart.
    try:
        return check_seed(value, "--seed")
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        callback=_seed_option,
        help=f"Random seed in [0, {SEED_MAX}] (same seed, same result).",
    ),
]
SegmentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--segment",
        help="One segment, as VARIABLE=VALUE (repeat for several context variables); "
        "default: the traffic mix observed.",
    ),
]


def _segment_arg(values: Sequence[str] | None) -> dict | None:
    """``["member=prime", ...]`` as ``{"member": "prime", ...}`` (None when not given)."""
    if not values:
        return None
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name:
            raise ValueError(f"--segment {v!r}: expected VARIABLE=VALUE, e.g. member=prime")
        out[name] = value
    return out


def design(
    space: SpaceOpt,
    size: Annotated[
        int | None,
        typer.Option(
            "--size", "-n", min=1, help="Number of layouts (pairwise: top up the covering array)."
        ),
    ] = None,
    kind: Annotated[
        DesignKind, typer.Option("--kind", help="pairwise covering array, random, or full.")
    ] = DesignKind.pairwise,
    seed: SeedOpt = 0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="CSV/Parquet file (default: CSV to stdout)."),
    ] = None,
) -> None:
    """Choose the first layouts to test (every pair of variants appears at least once)."""

    output = _check_table_output(output)
    sp = LayoutSpace.from_toml(space)
    frame = initial_design(sp, seed=seed, size=size, kind=kind.value)
    _write_table(frame, output)
    what = f"{len(frame)} layouts ({kind.value} design) of {sp.num_allowed:,} allowed"
    if output is not None:
        _stderr().print(
            f"wrote {what} to {output}; add 'impressions' and 'clicks' columns once tested"
        )


def fit(
    space: SpaceOpt,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            "-d",
            help="Observations CSV/Parquet: one label column per component, impressions, clicks.",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Posterior NetCDF file to write.")],
    method: Annotated[Method, typer.Option("--method", "-m", help="Inference method.")] = (
        Method.laplace
    ),
    seed: SeedOpt = 0,
    samples: Annotated[
        int, typer.Option("--samples", min=1, help="Number of posterior draws.")
    ] = 1000,
    delay: Annotated[
        str | None,
        typer.Option(
            "--delay",
            help="Click delay model (data need an 'age' column, hours since served): 'auto', "
            "'exponential:RATE' or 'weibull:SHAPE,SCALE'.",
        ),
    ] = None,
    half_life: Annotated[
        float | None,
        typer.Option(
            "--half-life",
            help="Discount older rows by 0.5**(rounds / H) ('round' column; else hours of 'age').",
        ),
    ] = None,
) -> None:
    """Fit the additive + pairwise model to observed clicks and save the posterior."""

    output = check_output_path(output, (".nc",))
    delay_model = None if delay is None else parse_delay(delay)
    sp = LayoutSpace.from_toml(space)
    obs = Observations.from_file(data, sp)

    nuts = method is Method.nuts
    with _status(f"fitting {method.value} on {obs.num_layouts} layouts", enabled=not nuts):
        post = fit_model(
            sp,
            obs,
            method=method.value,
            seed=seed,
            num_samples=samples,
            progress=nuts,
            delay=delay_model,
            half_life=half_life,
        )
    _check_converged(post, output)
    post.save(output)  # atomic: a temporary file renamed into place
    out = _stdout()
    out.print(
        f"wrote {output}: {post.method} fit, {post.num_draws} draws; data: "
        f"{obs.num_layouts} layouts, {int(obs.impressions.sum()):,} impressions, "
        f"{int(obs.clicks.sum()):,} clicks"
    )
    if post.diagnostics:
        out.print(
            "diagnostics: " + ", ".join(f"{k}={_fmt_value(v)}" for k, v in post.diagnostics.items())
        )


def _check_converged(post, output: Path) -> None:
    """A Laplace fit that did not converge is not written (the API only warns)."""
    if post.diagnostics.get("converged") is False:
        raise ValueError(
            f"{output}: not written: the {post.method} fit did not converge in "
            f"{post.diagnostics.get('iterations')} iterations; check the data (e.g. layouts "
            "with clicks == impressions) or use --method nuts"
        )


def _fmt_value(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if isinstance(v, bool) or f == int(f) and abs(f) < 1e12:
        return str(v) if isinstance(v, bool) else str(int(f))
    return f"{f:.4g}"


def score(
    posterior: Annotated[
        Path | None,
        typer.Option("--posterior", "-p", help="Posterior NetCDF file written by `fit`."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the scores to a .parquet or .csv file."),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option("--top", "-k", min=1, help="Keep only the best K layouts (default: all)."),
    ] = None,
    level: Annotated[
        float, typer.Option("--level", min=0.0, max=1.0, help="Credible-interval mass.")
    ] = 0.9,
    seed: SeedOpt = 0,
    segment: SegmentOpt = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard", help="Score only slice I of N of the index range to -o .parquet (I/N)."
        ),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Merge the SHARDS files (from --shard) into -o.")
    ] = False,
    shards: Annotated[
        list[Path] | None, typer.Argument(help="Shard files to --merge.", show_default=False)
    ] = None,
) -> None:
    """Score every layout: posterior mean CTR, credible interval, probability of being best.

    Without ``-o`` the best layouts are printed as a table (10, or ``--top``). With ``-o`` the
    scores of every allowed layout (or of the ``--top`` best) go to the file; a whole grid
    too large for memory is streamed to Parquet. ``--shard I/N`` scores one contiguous slice
    of the grid (one job of a batch array); ``--merge SHARDS -o FILE`` combines the N files
    with exact P(best).
    """
    if merge or shards or shard is not None:
        _score_shards(posterior, output, top, level, shard, merge, shards, segment)
        return
    if posterior is None:
        raise ValueError("--posterior is required (or --merge SHARDS to merge shard files)")
    output = _check_table_output(output)
    post = _load_posterior(posterior)
    seg = _segment_arg(segment)
    n_allowed = post.space.num_allowed
    stream = output is not None and top is None and n_allowed > MAX_FULL_GRID
    if stream and output.suffix.lower() == ".csv":
        raise ValueError(
            f"{output}: {n_allowed:,} layouts are too many for CSV; write .parquet "
            "(streamed) or pass --top K"
        )
    keep = top if output is not None else (top or 10)
    if stream:
        keep = 10
    with _status(f"scoring {n_allowed:,} layouts"):
        grid = score_grid(post, top=keep, level=level, segment=seg)
        if stream:
            rows = score_grid_to_parquet(post, output, level=level, seed=seed, segment=seg)
    frame = grid.to_pandas()
    if output is not None:
        if not stream:
            rows = len(frame)
            _write_table(frame, output)
        _stderr().print(f"wrote {rows:,} scored layouts to {output}")
    shown = frame.head(10 if output is not None else keep)
    _stdout().print(
        _scores_table(
            shown, f"Top {len(shown)} of {n_allowed:,} layouts", level, post.space.components
        )
    )


def _score_shards(posterior, output, top, level, shard, merge, shards, segment=None) -> None:
    """``score --shard I/N`` and ``score --merge SHARDS`` (see :mod:`layoutopt.score.shards`)."""

    if output is None or output.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError("--shard and --merge write Parquet: pass -o FILE.parquet")
    output = _check_table_output(output)
    if merge:
        if posterior is not None or shard is not None or segment or not shards:
            raise ValueError("--merge takes shard files only: score --merge A.parquet ... -o F")
        with _status(f"merging {len(shards)} shards"):
            rows = merge_shards(shards, output, top=top)
        _stderr().print(f"wrote {rows:,} scored layouts to {output}")
        return
    if shards:
        raise ValueError(f"unexpected arguments {[str(p) for p in shards]} (only with --merge)")
    if posterior is None or top is not None:
        raise ValueError("--shard I/N needs --posterior and scores every layout (no --top)")
    i, n = parse_shard(shard)
    post = _load_posterior(posterior)
    with _status(f"scoring shard {i}/{n} of {post.space.num_allowed:,} layouts"):
        rows = score_grid_to_parquet(
            post, output, level=level, shard=(i, n), segment=_segment_arg(segment)
        )
    _stderr().print(f"wrote {rows:,} scored layouts of shard {i}/{n} to {output}")


def best(
    posterior: PosteriorOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    level: Annotated[
        float, typer.Option("--level", min=0.0, max=1.0, help="Credible-interval mass.")
    ] = 0.9,
    seed: SeedOpt = 0,
    segment: SegmentOpt = None,
    by_segment: Annotated[
        bool,
        typer.Option(
            "--by-segment", help="A table of the best layout of every segment, then the mix."
        ),
    ] = False,
) -> None:
    """The layout most likely to have the highest click-through rate."""

    post = _load_posterior(posterior)
    if by_segment:
        frame = best_by_segment(post, level=level, seed=seed)
        if as_json:
            sys.stdout.write(frame.to_json(orient="records", indent=2) + "\n")
            return
        _stdout().print(_by_segment_table(frame, post.space, level))
        return
    record = _best_record(best_layout(post, level=level, seed=seed, segment=_segment_arg(segment)))
    if as_json:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return
    _stdout().print(_best_table(record, level=level))


def _best_record(pick) -> dict:
    return {
        "layout": dict(pick.layout),
        "index": int(pick.index),
        "mean": float(pick.mean),
        "lower": float(pick.lower),
        "upper": float(pick.upper),
        "p_best": float(pick.p_best),
        "exact": bool(pick.exact),
    }


def _best_table(record: dict, level: float, true_ctr: float | None = None) -> Table:
    table = Table(title="Best layout", title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for comp, label in record["layout"].items():
        table.add_row(comp, str(label))
    table.add_row("index", str(record["index"]))
    table.add_row("mean CTR", _fmt_rate(record["mean"]))
    table.add_row(
        f"{level:.0%} interval", f"{_fmt_rate(record['lower'])} - {_fmt_rate(record['upper'])}"
    )
    table.add_row("P(best)", f"{record['p_best']:.3f}")
    if not record["exact"]:
        table.add_row("search", "candidate search (space too large to enumerate)")
    if true_ctr is not None:
        table.add_row("true CTR", _fmt_rate(true_ctr))
    return table


def _by_segment_table(frame, space, level: float) -> Table:
    table = Table(title="Best layout per segment", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("segment", "share", *space.components):
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=_LABEL_WIDTH)
    table.add_column(f"mean CTR [{level:.0%} interval]", justify="right", no_wrap=True)
    table.add_column("P(best)", justify="right", no_wrap=True)
    for row in frame.to_dict("records"):
        cells = [row["segment"], f"{row['share']:.1%}"] + [str(row[c]) for c in space.components]
        cells.append(
            f"{_fmt_rate(row['mean'])} [{_fmt_rate(row['lower'])}, {_fmt_rate(row['upper'])}]"
        )
        cells.append(f"{row['p_best']:.3f}")
        table.add_row(*cells)
    return table


def propose(
    posterior: PosteriorOpt,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Number of layouts to propose.")] = 8,
    strategy: Annotated[
        Strategy, typer.Option("--strategy", help="How to choose the next layouts.")
    ] = Strategy.thompson,
    seed: SeedOpt = 0,
    exclude: Annotated[
        Path | None,
        typer.Option(
            "--exclude",
            help="CSV/Parquet of layouts not to propose (label columns; others ignored).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="CSV/Parquet file (default: CSV to stdout)."),
    ] = None,
    segment: SegmentOpt = None,
) -> None:
    """Propose the next layouts to test, with traffic weights."""

    output = _check_table_output(output)
    post = _load_posterior(posterior)
    excluded = None
    if exclude is not None:
        excluded = post.space.frame(read_layout_codes(exclude, post.space))
    frame = propose_layouts(
        post,
        k=k,
        strategy=strategy.value,
        seed=seed,
        exclude=excluded,
        segment=_segment_arg(segment),
    )
    _write_table(frame, output)
    if output is not None:
        _stderr().print(f"wrote {len(frame)} proposed layouts ({strategy.value}) to {output}")


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

    world = SyntheticWorld.hill2017(seed) if preset is Preset.hill2017 else SyntheticWorld.demo()
    names = [s.value for s in strategies] if strategies else ["thompson", "uniform"]
    rounds = math.ceil(budget / batch_size)
    results = []
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rounds"),
        TimeElapsedColumn(),
        console=_stderr(),
        redirect_stdout=False,  # stdout carries only the result table
    )
    with progress:
        task = progress.add_task("simulating", total=rounds * len(names))
        for name in names:
            progress.update(task, description=f"simulating {name}")
            policy = _campaign_policy(name, batch_size, method.value, samples, world.link)
            results.append(
                run_campaign(
                    world,
                    policy=policy,
                    budget=budget,
                    batch_size=batch_size,
                    seed=seed,
                    callback=lambda info, rec: progress.advance(task),
                )
            )
    best_world = world.best()
    out = _stdout()
    out.print(
        f"world: {preset.value} (seed {seed}), {world.space.num_allowed:,} allowed layouts, "
        f"true best CTR {_fmt_rate(best_world.ctr)}"
    )
    out.print(_regret_table(results, budget, batch_size))


def _campaign_policy(name: str, batch_size: int, method: str, samples: int, link: str):
    if name == "uniform":
        return policies.uniform()
    if name == "independent":
        return policies.independent(draws_per_round=batch_size)
    return CAMPAIGN_POLICIES[name](k=8, method=method, num_samples=samples, link=link)


def _checkpoints(budget: int, batch_size: int) -> list[int]:
    """About six impression counts, log-spaced from the first round to the budget."""
    first = min(batch_size, budget)
    if first >= budget:
        return [budget]
    points = {budget}
    for x in [first * (budget / first) ** (i / 5) for i in range(5)]:
        points.add(int(math.ceil(x / first) * first))
    return sorted(p for p in points if p <= budget)


def _regret_table(results, budget: int, batch_size: int) -> Table:
    table = Table(
        title="Regret (true best CTR minus CTR) by impressions served",
        title_justify="left",
    )
    table.add_column("impressions", justify="right")
    for res in results:
        table.add_column(f"{res.name}\nsimple", justify="right")
        table.add_column(f"{res.name}\ncumulative", justify="right")
    summaries = [res.summary(_checkpoints(budget, batch_size)) for res in results]
    for c in summaries[0].index:
        row = [f"{c:,}"]
        for s in summaries:
            if c in s.index:
                row += [
                    _fmt_rate(s.loc[c, "simple_regret"]),
                    _fmt_rate(s.loc[c, "cumulative_regret"]),
                ]
            else:
                row += ["", ""]
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------------- demo
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
    out = _stdout()
    world = SyntheticWorld.demo()
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
            f"{_fmt_rate(info.mean)} [{_fmt_rate(info.lower)}, {_fmt_rate(info.upper)}]",
            f"{info.p_best:.3f}",
            _fmt_rate(ctr),
            f"{int(np.sum(true_ctr > ctr)) + 1}",
        )
        last[:] = [info, record]

    policy = policies.thompson(k=k, method=method.value, num_samples=samples)
    with _status(f"playing {rounds + 1} rounds ({method.value} fits)"):
        run_campaign(
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
    out.print(_best_table(record_, level=0.9, true_ctr=pick_ctr))
    out.print(
        f"True best layout: CTR {_fmt_rate(truth.ctr)} ({_layout_text(truth.layout)}). "
        f"The pick's regret is {_fmt_rate(truth.ctr - pick_ctr)}; it was "
        f"{'tested' if record.pick_tested else 'never tested'}, and "
        f"{record.num_tested} of {space.num_allowed:,} layouts were."
    )
    frame = score_grid(info.posterior, space, top=top).top(top)
    frame["true_ctr"] = world.ctr_of_index(frame["index"].to_numpy())
    out.print(
        _scores_table(
            frame, f"Top {len(frame)} of {space.num_allowed:,} layouts", 0.9, space.components
        )
    )
    _stderr().print(f"demo finished in {time.perf_counter() - t_start:.1f}s")


def _allowed_indices(space):
    for _, codes in space.iter_chunks():
        yield space.indices(codes), codes


def _layout_text(layout: dict) -> str:
    return ", ".join(f"{c}={v}" for c, v in layout.items())


for _command in (demo, design, fit, score, best, propose, simulate):
    app.command()(_command)
app.command()(cli_campaign.report)
app.add_typer(cli_campaign.app, name="campaign")


# --------------------------------------------------------------------------- entry points
# Typer vendors click in recent versions (typer._click) and depends on it in older ones;
# reach click's exception base class through a public typer name either way.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"warning: {one_line(message)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Errors never raise: bad usage and bad input print one ``error: ...`` line on stderr and
    return 2; OS failures return 1; an unexpected exception prints one line and returns 1
    (set ``LAYOUTOPT_DEBUG=1`` to get the traceback instead).

    Args:
        argv: arguments without the program name.

    Returns:
        The process exit status.
    """
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        # Library warnings (FitWarning, UncoverablePairsWarning) become one stderr line.
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        try:
            rv = command.main(args=args, prog_name="layoutopt", standalone_mode=False)
        except _CLICK_EXCEPTION as err:
            message = one_line(err.format_message())
            if message:  # empty when the help was shown for a bare `layoutopt`
                ctx = getattr(err, "ctx", None)
                hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                sys.stderr.write(f"error: {message}{hint}\n")
            return int(getattr(err, "exit_code", EXIT_USAGE)) or EXIT_USAGE
        except (ValueError, FileNotFoundError) as err:
            sys.stderr.write(f"error: {one_line(err)}\n")
            return EXIT_USAGE
        except OSError as err:
            sys.stderr.write(f"error: {one_line(err)}\n")
            return EXIT_FAILURE
        except KeyboardInterrupt:
            sys.stderr.write("error: interrupted\n")
            return 130
        except Exception as err:
            if os.environ.get("LAYOUTOPT_DEBUG"):
                raise
            sys.stderr.write(
                f"error: internal error ({type(err).__name__}: {one_line(err)}); "
                "rerun with LAYOUTOPT_DEBUG=1 for the traceback\n"
            )
            return EXIT_FAILURE
    if type(rv) is int:  # click returns an exit status here for --help and similar
        return rv
    return EXIT_OK


def app_main() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())


if __name__ == "__main__":
    app_main()
