"""The single-shot commands: ``design``, ``fit``, ``score``, ``best`` and ``propose``.

Each parses its options, calls the library once and prints (or writes) the result; the typer
application in :mod:`layoutopt.cli.app` registers them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from layoutopt.cli import library
from layoutopt.cli.console import status, stderr, stdout, write_table
from layoutopt.cli.objective import (
    ControlOpt,
    GuardrailOpt,
    MetricFilesOpt,
    MetricOpt,
    ObjectiveOpt,
    scored_posterior,
)
from layoutopt.cli.options import (
    AdditiveOpt,
    ColumnOpt,
    DesignKind,
    Method,
    PosteriorOpt,
    SeedOpt,
    SegmentOpt,
    SpaceOpt,
    Strategy,
    check_table_output,
    column_arg,
    half_life_arg,
    load_posterior,
    segment_arg,
)
from layoutopt.cli.tables import best_record, best_table, by_segment_table, fmt_value, scores_table
from layoutopt.util.io import check_output_path

__all__ = ["best", "design", "fit", "propose", "score"]


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

    output = check_table_output(output)
    sp, _ = library.mapping.read_space_toml(space)  # a [columns] table is the data's
    frame = library.design.initial_design(sp, seed=seed, size=size, kind=kind.value)
    write_table(frame, output)
    what = f"{len(frame)} layouts ({kind.value} design) of {sp.num_allowed:,} allowed"
    if output is not None:
        stderr().print(
            f"wrote {what} to {output}; add 'impressions' and 'clicks' columns once tested"
        )


def _open_unit_interval(value: float | None) -> float | None:
    if value is not None and not 0.0 < value < 1.0:
        raise typer.BadParameter(f"{value} is not in (0, 1); e.g. 0.95")
    return value


def fit(
    *,
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
        str | None,
        typer.Option(
            "--half-life",
            help="Discount older rows by 0.5**(rounds / H) ('round' column; else hours of "
            "'age'), or 'auto': the discount the data's rounds support (docs/drift.md).",
        ),
    ] = None,
    warmup: Annotated[
        int | None,
        typer.Option(
            "--warmup", min=1, help="NUTS warm-up (adaptation) steps per chain [default: 500]."
        ),
    ] = None,
    target_accept: Annotated[
        float | None,
        typer.Option(
            "--target-accept",
            callback=_open_unit_interval,
            help="NUTS step-size adaptation target in (0, 1); raise it (e.g. 0.95) when the "
            "fit reports divergences [default: 0.9].",
        ),
    ] = None,
    column: ColumnOpt = None,
    metric: MetricOpt = "clicks",
    additive: AdditiveOpt = False,
) -> None:
    """Fit the additive + pairwise model to observed clicks (or --metric) and save it."""

    output = check_output_path(output, (".nc",))
    delay_model = None if delay is None else library.delay.parse_delay(delay)
    sp, columns = library.mapping.read_space_toml(space)  # --column wins over [columns]
    columns = library.mapping.merge_columns(columns, column_arg(column))
    further = tuple(m for m in (metric,) if m != "clicks")
    obs = library.observations.Observations.from_file(
        data, sp, columns=columns, metrics=further
    ).metric(metric)

    nuts = method is Method.nuts
    if not nuts and (warmup is not None or target_accept is not None):
        raise ValueError("--warmup and --target-accept apply to --method nuts")
    nuts_args = {}
    if warmup is not None:
        nuts_args["num_warmup"] = warmup
    if target_accept is not None:
        nuts_args["options"] = library.fitting.NutsOptions(target_accept_prob=target_accept)
    with status(f"fitting {method.value} on {obs.num_layouts} layouts", enabled=not nuts):
        post = library.fitting.fit(
            sp,
            obs,
            method=method.value,
            seed=seed,
            num_samples=samples,
            progress=nuts and sys.stderr.isatty(),  # NumPyro's bar floods a redirected log
            delay=delay_model,
            half_life=half_life_arg(half_life),
            prior=library.priors.PriorConfig(pairwise=False) if additive else None,
            **nuts_args,
        )
    _check_converged(post, output)
    post.save(output)  # atomic: a temporary file renamed into place
    out = stdout()
    out.print(
        f"wrote {output}: {post.method} fit, {post.num_draws} draws; data: "
        f"{obs.num_layouts} layouts, {int(obs.impressions.sum()):,} impressions, "
        f"{int(obs.clicks.sum()):,} {metric}"
    )
    if post.diagnostics:
        out.print(
            "diagnostics: " + ", ".join(f"{k}={fmt_value(v)}" for k, v in post.diagnostics.items())
        )


def _check_converged(post, output: Path) -> None:
    """A Laplace fit that did not converge is not written (the API only warns)."""
    if post.diagnostics.get("converged") is False:
        raise ValueError(
            f"{output}: not written: the {post.method} fit did not converge in "
            f"{post.diagnostics.get('iterations')} iterations; check the data (e.g. layouts "
            "with clicks == impressions) or use --method nuts"
        )


def score(
    *,
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
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Run as one of N processes of JAX's runtime (Slurm/Open MPI, or the "
            "LAYOUTOPT_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID variables).",
        ),
    ] = False,
    metric: MetricFilesOpt = None,
    objective: ObjectiveOpt = None,
    guardrail: GuardrailOpt = None,
    control: ControlOpt = None,
) -> None:
    """Score every layout: posterior mean CTR, credible interval, probability of being best.

    Without ``-o`` the best layouts are printed as a table (10, or ``--top``). With ``-o`` the
    scores of every allowed layout (or of the ``--top`` best) go to the file; a whole grid
    too large for memory is streamed to Parquet. ``--shard I/N`` scores one contiguous slice
    of the grid (one job of a batch array); ``--merge SHARDS -o FILE`` combines the N files
    with exact P(best). ``--distributed`` runs the same pass as one program on N processes
    (every process runs the same command): each scores its slice on its own devices, the
    answer is exact, and with ``-o .parquet`` each writes its part and process 0 merges them.
    With ``--metric``/``--objective``/``--guardrail`` the scores are those of the value per
    impression over the layouts that pass the guardrails.
    """
    settings = (metric, objective, guardrail, control)
    if any(settings) and (distributed or merge or shards or shard is not None):
        raise ValueError(
            "--metric/--objective/--guardrail score in one process: drop "
            "--distributed/--shard/--merge"
        )
    if distributed:
        if merge or shards or shard is not None:
            raise ValueError("--distributed splits the grid itself: drop --shard/--merge")
        _score_distributed(posterior, output, top=top, level=level, segment=segment)
        return
    if merge or shards or shard is not None:
        _score_shards(
            posterior,
            output,
            top=top,
            level=level,
            shard=shard,
            merge=merge,
            shards=shards,
            segment=segment,
        )
        return
    if posterior is None:
        raise ValueError("--posterior is required (or --merge SHARDS to merge shard files)")
    output = check_table_output(output)
    post = scored_posterior(load_posterior(posterior), *settings)
    seg = segment_arg(segment)
    n_allowed = post.space.num_allowed
    stream = output is not None and top is None and n_allowed > library.scoring.MAX_FULL_GRID
    if stream and output.suffix.lower() == ".csv":
        raise ValueError(
            f"{output}: {n_allowed:,} layouts are too many for CSV; write .parquet "
            "(streamed) or pass --top K"
        )
    keep = top if output is not None else (top or 10)
    if stream:
        keep = 10
    with status(f"scoring {n_allowed:,} layouts"):
        grid = library.scoring.score_grid(post, top=keep, level=level, segment=seg)
        if stream:
            rows = library.scoring.score_grid_to_parquet(
                post, output, level=level, seed=seed, segment=seg
            )
    frame = grid.to_pandas()
    if output is not None:
        if not stream:
            rows = len(frame)
            write_table(frame, output)
        stderr().print(f"wrote {rows:,} scored layouts to {output}")
    shown = frame.head(10 if output is not None else keep)
    stdout().print(
        scores_table(
            shown, f"Top {len(shown)} of {n_allowed:,} layouts", level, post.space.components
        )
    )


def _score_distributed(posterior, output, *, top, level, segment) -> None:
    """``score --distributed`` (see :mod:`layoutopt.score.distributed`)."""
    if posterior is None:
        raise ValueError("--posterior is required")
    output = check_table_output(output)
    # join the runtime before anything touches JAX (loading the posterior does)
    i, n = library.distributed.initialize_from_env()
    post = load_posterior(posterior)
    seg = segment_arg(segment)
    parquet = output is not None and output.suffix.lower() in (".parquet", ".pq")
    with status(f"process {i} of {n}: scoring {post.space.num_allowed:,} layouts"):
        if parquet and top is None:
            rows = library.distributed.score_grid_to_parquet_distributed(
                post, output, level=level, segment=seg
            )
        else:
            keep = top if output is not None else (top or 10)
            grid = library.distributed.score_grid_distributed(
                post, top=keep, level=level, segment=seg
            )
            rows = len(grid)
    if i != 0:  # every process holds the answer; process 0 writes and prints it
        return
    if output is not None:
        if not (parquet and top is None):
            write_table(grid.to_pandas(), output)
        stderr().print(f"wrote {rows:,} scored layouts to {output} ({n} processes)")
        return
    frame = grid.to_pandas()
    title = f"Top {len(frame)} of {post.space.num_allowed:,} layouts ({n} processes)"
    stdout().print(scores_table(frame, title, level, post.space.components))


def _score_shards(posterior, output, *, top, level, shard, merge, shards, segment) -> None:
    """``score --shard I/N`` and ``score --merge SHARDS`` (see :mod:`layoutopt.score.shards`)."""

    if output is None or output.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError("--shard and --merge write Parquet: pass -o FILE.parquet")
    output = check_table_output(output)
    if merge:
        if posterior is not None or shard is not None or segment or not shards:
            raise ValueError("--merge takes shard files only: score --merge A.parquet ... -o F")
        with status(f"merging {len(shards)} shards"):
            rows = library.shards.merge_shards(shards, output, top=top)
        stderr().print(f"wrote {rows:,} scored layouts to {output}")
        return
    if shards:
        raise ValueError(f"unexpected arguments {[str(p) for p in shards]} (only with --merge)")
    if posterior is None or top is not None:
        raise ValueError("--shard I/N needs --posterior and scores every layout (no --top)")
    i, n = library.shards.parse_shard(shard)
    post = load_posterior(posterior)
    with status(f"scoring shard {i}/{n} of {post.space.num_allowed:,} layouts"):
        rows = library.scoring.score_grid_to_parquet(
            post, output, level=level, shard=(i, n), segment=segment_arg(segment)
        )
    stderr().print(f"wrote {rows:,} scored layouts of shard {i}/{n} to {output}")


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
    *,
    metric: MetricFilesOpt = None,
    objective: ObjectiveOpt = None,
    guardrail: GuardrailOpt = None,
    control: ControlOpt = None,
) -> None:
    """The layout most likely to have the highest click-through rate (or --objective value)."""

    post = scored_posterior(load_posterior(posterior), metric, objective, guardrail, control)
    if by_segment and isinstance(post, library.objective.ObjectivePosterior):
        raise ValueError("--by-segment scores one posterior: drop --metric/--objective/--guardrail")
    if by_segment:
        frame = library.segments.best_by_segment(post, level=level, seed=seed)
        if as_json:
            sys.stdout.write(frame.to_json(orient="records", indent=2) + "\n")
            return
        stdout().print(by_segment_table(frame, post.space, level))
        return
    record = best_record(
        library.scoring.best_layout(post, level=level, seed=seed, segment=segment_arg(segment))
    )
    if as_json:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return
    stdout().print(best_table(record, level=level))
    if record["no_evidence"]:
        stdout().print(record["no_evidence"])


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
    *,
    metric: MetricFilesOpt = None,
    objective: ObjectiveOpt = None,
    guardrail: GuardrailOpt = None,
    control: ControlOpt = None,
) -> None:
    """Propose the next layouts to test, with traffic weights (on the --objective's value,
    never a layout that fails a --guardrail)."""

    output = check_table_output(output)
    post = scored_posterior(load_posterior(posterior), metric, objective, guardrail, control)
    excluded = None
    if exclude is not None:
        excluded = post.space.frame(library.observations.read_layout_codes(exclude, post.space))
    frame = library.proposals.propose(
        post,
        k=k,
        strategy=strategy.value,
        seed=seed,
        exclude=excluded,
        segment=segment_arg(segment),
    )
    write_table(frame, output)
    if frame.attrs.get("no_evidence"):
        stderr().print(f"note: {frame.attrs['no_evidence']}; proposing uniform layouts to explore")
    if output is not None:
        stderr().print(f"wrote {len(frame)} proposed layouts ({strategy.value}) to {output}")
