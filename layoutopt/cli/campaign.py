"""``layoutopt campaign ...`` and ``layoutopt report``: the durable campaign from the shell.

::

    layoutopt campaign init     --space S --db D [--name N]
    layoutopt campaign ingest   --db D FILE [FILE ...]
    layoutopt campaign fit      --db D [--method M] [--seed N]
    layoutopt campaign propose  --db D [--k K] [--strategy S] [--seed N] [-o next.csv]
                                [--min-share F] [--burn-in N]
    layoutopt campaign best     --db D [--json]
    layoutopt campaign status   --db D
    layoutopt campaign decide   --db D [--value-remaining V] [--expected-loss L] [--set]
    layoutopt campaign objective --db D [--objective clicks=1,signups=30]
                                [--guardrail dismissals:0.1:0.9] [--control C=L,...]
    layoutopt campaign report   --db D -o report.html
    layoutopt campaign export   --db D -o DIR
    layoutopt report            --posterior P -o report.html

``--db`` is a SQLite file path or a ``postgresql://`` URL; ``--name`` picks a campaign when the
store holds several. Like the rest of the CLI (:mod:`layoutopt.cli`, whose ``main`` runs these
commands), errors are one ``error: ...`` line with exit status 2 and no traceback, and files
are written atomically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from layoutopt.cli import deciding, library, serve
from layoutopt.cli.console import shown_target, write_table
from layoutopt.cli.objective import campaign_objective
from layoutopt.cli.options import (
    AdditiveOpt,
    ColumnOpt,
    DbOpt,
    Method,
    NameOpt,
    Strategy,
    column_arg,
    half_life_arg,
)
from layoutopt.util.io import atomic_dir, check_output_path

__all__ = ["app", "report"]

app = typer.Typer(
    name="campaign",
    help="A campaign that remembers: ingest results, fit, propose, round after round, in a "
    "SQLite file or a PostgreSQL database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _out() -> Console:
    # no markup (campaign names and labels print as typed), wide off a terminal
    console = Console(highlight=False, markup=False)
    if not console.is_terminal:
        # a pipe or a log: tables 150 wide, and a line of text stays one line (no wrap in
        # the middle of a path, whatever its length)
        console = Console(highlight=False, markup=False, width=150, soft_wrap=True)
    return console


def _err() -> Console:
    return Console(stderr=True, highlight=False, markup=False)


def _pct(x) -> str:
    return "" if x is None or x != x else f"{100.0 * float(x):.2f}%"


@app.command()
def init(
    space: Annotated[Path, typer.Option("--space", "-s", help="Layout space TOML file.")],
    db: DbOpt,
    name: Annotated[str, typer.Option("--name", help="Campaign name.")] = "default",
) -> None:
    """Create a campaign (and the store, if new) for a layout space (and the column mapping
    of its [columns] table, used by every later ingest; and the [objective], [guardrails]
    and [control] tables, when present, as the campaign's settings)."""
    sp, columns, settings = library.mapping.read_campaign_toml(space)
    objective = settings.get("objective")
    guardrails = settings.get("guardrails")
    control = settings.get("control")
    # checked before anything is created, so a bad setting leaves no campaign behind
    if objective is not None:
        library.objective.Objective.of(dict(objective))
    library.objective.Guardrail.of_dict(dict(guardrails or {}))
    if control is not None:
        sp.index({str(k): str(v) for k, v in control.items()})
    if guardrails and control is None:
        raise ValueError(
            f"{space}: [guardrails] are relative to a control layout; add a [control] table "
            "with one label per component"
        )
    kw = {"objective": None if objective is None else dict(objective)}
    kw |= {"guardrails": dict(guardrails) if guardrails else None, "control": control}
    with library.campaign.Campaign.create(db, sp, name=name, **kw) as camp:
        if columns:
            camp.set_columns(columns)
        _out().print(
            f"created campaign {camp.name!r} in {shown_target(db)}: "
            f"{sp.num_components} components, {sp.num_allowed:,} allowed layouts"
        )


@app.command()
def ingest(
    db: DbOpt,
    files: Annotated[list[Path], typer.Argument(help="Results files (CSV/Parquet).")],
    name: NameOpt = None,
    events: Annotated[
        bool,
        typer.Option(
            "--events",
            help="The files are impression-level event logs (labels, served_at, clicked_at), "
            "aggregated to age cohorts; needs --now.",
        ),
    ] = False,
    now: Annotated[
        str | None,
        typer.Option("--now", help="When the event logs were extracted (ISO time, UTC)."),
    ] = None,
    column: ColumnOpt = None,
) -> None:
    """Add results files; each is all-or-nothing, and a file seen before adds nothing."""
    if events and now is None:
        raise ValueError("--events needs --now, the time the logs were extracted (ISO, UTC)")
    if now is not None and not events:
        raise ValueError("--now applies to event logs; add --events")
    with library.campaign.Campaign.open(db, name) as camp:
        for file in files:
            cols = column_arg(column)
            if events:
                result = camp.ingest_events(file, now=now, columns=cols)
            else:
                result = camp.ingest(file, columns=cols)
            _out().print(result.message())


@app.command()
def fit(
    db: DbOpt,
    method: Annotated[Method, typer.Option("--method", "-m", help="Inference method.")] = (
        Method.laplace
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fit.")] = 0,
    name: NameOpt = None,
    delay: Annotated[
        str | None,
        typer.Option(
            "--delay",
            help="Click delay model (rows need ages: ingest event logs with --events): "
            "'auto', 'exponential:RATE' or 'weibull:SHAPE,SCALE'.",
        ),
    ] = None,
    half_life: Annotated[
        str | None,
        typer.Option(
            "--half-life",
            help="Discount older rounds by 0.5**(rounds / H), or 'auto': the discount the "
            "data's rounds support (docs/drift.md).",
        ),
    ] = None,
    additive: AdditiveOpt = False,
) -> None:
    """Fit the model to everything ingested and record the fit."""
    delay_model = None if delay is None else library.delay.parse_delay(delay)
    prior = library.priors.PriorConfig(pairwise=False) if additive else None
    half_life = half_life_arg(half_life)
    with library.campaign.Campaign.open(db, name) as camp:
        post = camp.fit(
            method.value, seed=seed, prior=prior, delay=delay_model, half_life=half_life
        )
        obs = camp.observations()
        pick = camp.best()
    _out().print(
        f"fitted {post.method} (seed {seed}) on {obs.num_layouts} layouts, "
        f"{int(obs.impressions.sum()):,} impressions; pick: layout {pick.index} "
        f"{_pct(pick.mean)} [{_pct(pick.lower)}, {_pct(pick.upper)}], P(best) {pick.p_best:.3f}"
    )
    if pick.no_evidence:
        _out().print(pick.no_evidence)
    if "half_life_auto" in post.diagnostics:
        _out().print(f"half_life auto: {post.diagnostics['half_life_auto']}")


@app.command()
def propose(
    db: DbOpt,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Layouts to propose.")] = 8,
    strategy: Annotated[Strategy, typer.Option("--strategy", help="How to choose.")] = (
        Strategy.thompson
    ),
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed (default: the number of the round being proposed)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV/Parquet file (default: stdout).")
    ] = None,
    min_share: Annotated[
        float,
        typer.Option("--min-share", help="Traffic floor: each layout's least share of a batch."),
    ] = 0.0,
    burn_in: Annotated[
        int,
        typer.Option(
            "--burn-in", help="Keep a variant proposed until it has this many impressions."
        ),
    ] = 0,
    name: NameOpt = None,
) -> None:
    """Propose the next layouts (fitting first if data arrived) and record them as a round."""
    if output is not None:
        check_output_path(output, (".csv", ".parquet", ".pq"))
    with library.campaign.Campaign.open(db, name) as camp:
        # seed None: the round's number, resolved where the round is numbered
        prop = camp.propose(
            k=k, strategy=strategy.value, seed=seed, min_share=min_share, burn_in=burn_in
        )
    if prop.refit:
        _err().print(prop.refit)
    if prop.note:
        _err().print(f"note: {prop.note}")
    if prop.no_evidence:
        _err().print(f"note: {prop.no_evidence}; the round explores (uniform layouts)")
    frame = prop.layouts
    write_table(frame, output)
    _err().print(
        f"round {prop.round}: {len(frame)} layouts ({prop.strategy}, seed {prop.seed})"
        + (f" written to {output}" if output is not None else "")
    )


@app.command()
def best(
    db: DbOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    name: NameOpt = None,
) -> None:
    """The pick of the latest fit: highest posterior mean CTR, interval, P(best)."""
    with library.view.CampaignView.open(db, name) as camp:
        pick = camp.best()
        stale = camp.stale()
    if as_json:
        sys.stdout.write(json.dumps(pick._asdict() | {"stale": stale}, indent=2) + "\n")
        return
    table = Table(title="Best layout", title_justify="left", show_header=False)
    for comp, label in pick.layout.items():
        table.add_row(comp, str(label))
    table.add_row("index", str(pick.index))
    table.add_row("mean CTR", _pct(pick.mean))
    table.add_row("90% interval", f"{_pct(pick.lower)} - {_pct(pick.upper)}")
    table.add_row("P(best)", f"{pick.p_best:.3f}")
    _out().print(table)
    if pick.no_evidence:
        _out().print(pick.no_evidence)
    if stale:
        _err().print(f"note: {stale}; run `campaign fit` to update")


@app.command()
def status(db: DbOpt, name: NameOpt = None) -> None:
    """The campaign's space, data, fits and one line per round."""
    # the store's records only (campaign.view): no JAX, so status prints at once
    with library.view.CampaignView.open(db, name) as camp:
        space, version = camp.space, camp.space_version
        hist = camp.history()
        stale = camp.stale()
        others = camp.store.campaign_names()
        checks = serve.check_lines(camp)
        verdict = deciding.decision_line(camp)
        settings = camp.settings_line()
        evidence = camp.best().no_evidence if camp.store.fits(camp.campaign_id) else None
        fit_line = _fit_line(camp.latest_fit())
    out = _out()
    out.print(
        f"campaign {camp.name!r} in {shown_target(db)} (store holds {len(others)}): space "
        f"version {version}, {space.num_allowed:,} allowed layouts; fit: {stale or 'up to date'}"
    )
    table = Table(title="Rounds", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("round", "proposed", "ingested", "impressions", "clicks", "pick", "mean CTR"):
        table.add_column(col, justify="left" if col in ("proposed", "ingested") else "right")
    table.add_column("P(best)", justify="right")
    for r in hist.to_dict("records"):
        prop = (
            r["strategy"]
            if r["k"] != r["k"] or r["k"] is None
            else f"{r['strategy']}, k={r['k']:.0f}"
        )
        pick = (
            ""
            if r["pick_index"] is None or r["pick_index"] != r["pick_index"]
            else str(int(r["pick_index"]))
        )
        interval = f"{_pct(r['mean'])} [{_pct(r['lower'])}, {_pct(r['upper'])}]" if pick else ""
        table.add_row(
            str(r["round"]),
            str(prop),
            r["sources"],
            f"{r['impressions']:,}",
            f"{r['clicks']:,}",
            pick,
            interval,
            "" if not pick else f"{r['p_best']:.3f}",
        )
    out.print(table)
    if evidence:
        out.print(evidence)
    if fit_line:
        out.print(fit_line)
    serve.print_lines(checks, out)
    if settings:
        out.print(settings)
    out.print(verdict)


def _fit_line(fit: dict | None) -> str | None:
    """``latest fit: laplace, half_life auto: change at round 8 (...)``, or None before the
    first fit."""
    if fit is None:
        return None
    options, diagnostics = fit["options"], fit["diagnostics"]
    parts = [f"latest fit: {fit['method']} (seed {fit['seed']})"]
    if options.get("delay") is not None:
        parts.append(f"delay {options['delay']}")
    half_life = options.get("half_life")
    if half_life == "auto":
        parts.append(f"half_life auto: {diagnostics.get('half_life_auto', '?')}")
    elif half_life is not None:
        parts.append(f"half_life {half_life:g} rounds")
    return ", ".join(parts)


app.command()(serve.allocation)
app.command()(serve.assign)
app.command()(serve.evaluate)
app.command()(deciding.decide)
app.command("objective")(campaign_objective)


@app.command("report")
def campaign_report(
    db: DbOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")],
    name: NameOpt = None,
    evaluate: Annotated[
        list[Path] | None,
        typer.Option(
            "--evaluate",
            help="An allocation JSON file (as `campaign allocation` writes) to evaluate "
            "off-policy in the report; repeat for several.",
        ),
    ] = None,
) -> None:
    """One self-contained HTML report: effects, interactions, top layouts, history."""
    check_output_path(output, (".html", ".htm"))
    with library.campaign.Campaign.open(db, name) as camp:
        camp.report(output, evaluate=evaluate or None)
    _err().print(f"wrote {output}")


EXPORT_TABLES = ("observations", "proposals", "history")


@app.command()
def export(
    db: DbOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write into.")],
    name: NameOpt = None,
) -> None:
    """Observations, proposals and history as Parquet files in a directory.

    The directory is written whole or not at all (a temporary folder renamed into place).
    An earlier export there is replaced; a directory holding other files is refused.
    """
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: exists and is not a directory")
    if not output.parent.is_dir():
        raise ValueError(f"{output}: directory {str(output.parent)!r} does not exist")
    names = [f"{stem}.parquet" for stem in EXPORT_TABLES]
    earlier = sorted(p.name for p in output.iterdir()) if output.exists() else []
    foreign = [n for n in earlier if n not in names]
    if foreign:
        raise ValueError(
            f"{output}: holds files that are not a layoutopt export ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); export into a new or empty directory"
        )
    with library.view.CampaignView.open(db, name) as camp:
        tables = {
            "observations": camp.observations().to_frame(),
            "proposals": camp.proposals(),
            "history": camp.history(),
        }
    with atomic_dir(output) as tmp:
        for stem, frame in tables.items():
            frame.to_parquet(tmp / f"{stem}.parquet", index=False)
    replaced = " (replacing the earlier export)" if earlier else ""
    _err().print(f"wrote {', '.join(names)} to {output}{replaced}")


def report(
    posterior: Annotated[
        Path, typer.Option("--posterior", "-p", help="Posterior NetCDF file written by `fit`.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")],
) -> None:
    """One self-contained HTML report of a posterior: effects, interactions, top layouts."""

    check_output_path(output, (".html", ".htm"))
    library.report.posterior_report(library.posterior.Posterior.load(posterior), output)
    _err().print(f"wrote {output}")
