"""``layoutopt campaign allocation | assign | evaluate``: serving a campaign from the shell.

::

    layoutopt campaign allocation --db D -o allocation.json
    layoutopt campaign assign     --db D --units units.csv -o assignments.csv
    layoutopt campaign evaluate   --db D --allocation other.json

The commands are registered on :data:`layoutopt.cli.campaign.app`; :func:`print_checks` is
the sample-ratio and holdout lines of ``campaign status``. Errors are one ``error: ...`` line
with exit status 2 (:func:`layoutopt.cli.app.main`), and files are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from layoutopt.cli import library
from layoutopt.cli.options import DbOpt, NameOpt
from layoutopt.util.io import atomic_path, check_output_path

__all__ = ["allocation", "assign", "evaluate", "check_lines", "print_lines", "read_units"]


def _err() -> Console:
    return Console(stderr=True, highlight=False, markup=False)  # labels print as typed


def allocation(
    db: DbOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="JSON file to write.")],
    name: NameOpt = None,
) -> None:
    """The current round's allocation as a portable JSON file for a site's own SDK."""
    check_output_path(output, (".json",))
    with library.campaign.Campaign.open(db, name) as camp:
        doc = camp.allocation()
    with atomic_path(output) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    _err().print(f"round {doc['round']}: {len(doc['layouts'])} layouts written to {output}")


def read_units(path: Path):
    """A units file (CSV or Parquet) with a ``unit`` column, read as text.

    Raises:
        ValueError: for a missing file, another suffix, or no ``unit`` column.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = library.pandas.read_csv(path, dtype=str, keep_default_na=False)
    elif suffix in (".parquet", ".pq"):
        frame = library.pandas.read_parquet(path).astype(str)
    else:
        raise ValueError(f"{path}: units must be a .csv or .parquet file")
    if "unit" not in frame.columns:
        raise ValueError(f"{path}: no 'unit' column; columns: {list(frame.columns)}")
    return frame


def assign(
    db: DbOpt,
    units: Annotated[
        Path, typer.Option("--units", help="CSV/Parquet file with a 'unit' column (+ segments).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV/Parquet file to write.")],
    name: NameOpt = None,
) -> None:
    """Assign units to the current round's layouts (sticky, with propensities)."""
    check_output_path(output, (".csv", ".parquet", ".pq"))
    table = read_units(units)
    with library.campaign.Campaign.open(db, name) as camp:
        names = list(camp.space.segment_names)
        frame = camp.assign(table[["unit", *[n for n in names if n in table.columns]]])
    with atomic_path(output) as tmp:
        if output.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    _err().print(
        f"round {int(frame['round'].iloc[0])}: {len(frame):,} units assigned "
        f"({int(frame['redrawn'].sum()):,} redrawn, {int(frame['holdout'].sum()):,} in the "
        f"holdout) written to {output}"
    )


def evaluate(
    db: DbOpt,
    allocation_file: Annotated[
        Path, typer.Option("--allocation", help="allocation.json of the allocation to evaluate.")
    ],
    level: Annotated[float, typer.Option("--level", min=0.5, max=0.999)] = 0.9,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    name: NameOpt = None,
) -> None:
    """Each estimator's estimate of another allocation's CTR, with its interval."""
    with library.campaign.Campaign.open(db, name) as camp:
        estimates = camp.evaluate(allocation_file, level=level, seed=seed)
    out = Console(highlight=False, markup=False)
    for e in estimates:
        out.print(
            f"{e.estimator:>5}: {100 * e.value:.3f}% [{100 * e.lower:.3f}%, "
            f"{100 * e.upper:.3f}%] ({e.level:.0%} bootstrap interval)"
        )


def check_lines(camp) -> list[str]:
    """The status lines of the campaign's checks: one ``sample ratio`` line per round (and
    segment) that ingested rows name, and the holdout lift when the rows carry a holdout."""
    lines = []
    space = camp.space
    for rc in camp.sample_ratios():
        c = rc.check
        where = f"round {rc.round}" + ("" if rc.segment is None else f" {rc.segment}")
        total = int(c.observed.sum())
        if not c.mismatch:
            lines.append(
                f"{where}: sample ratio ok ({total:,} impressions, chi-square {c.statistic:.1f}, "
                f"{c.dof} dof, p = {c.p_value:.3g})"
            )
            continue
        i = int(rc.index[c.worst])
        labels = "/".join(space.layout(i).values())
        lines.append(
            f"{where}: sample ratio mismatch, p = {c.p_value:.3g} ({total:,} impressions); "
            f"worst layout {labels} (index {i}): {int(c.observed[c.worst]):,} served, "
            f"{c.expected[c.worst]:,.1f} planned"
        )
    logged = camp.logged()
    if len(logged) and logged["holdout"].any() and (~logged["holdout"].astype(bool)).any():
        lift = camp.lift()
        lines.append(
            f"holdout lift: {100 * lift.lift:+.1f}% [{100 * lift.lower:+.1f}%, "
            f"{100 * lift.upper:+.1f}%] ({lift.level:.0%} interval; campaign CTR "
            f"{100 * lift.campaign_ctr:.2f}% on {lift.campaign_impressions:,} impressions, "
            f"holdout {100 * lift.holdout_ctr:.2f}% on {lift.holdout_impressions:,})"
        )
    return lines


def print_lines(lines: list[str], console: Console) -> None:
    """Print lines of :func:`check_lines` whole (what ``campaign status`` shows after its
    table)."""
    for line in lines:
        console.print(line, markup=False, overflow="ignore", crop=False, soft_wrap=True)
