"""``--metric``, ``--objective``, ``--guardrail`` and ``--control``: several metrics on the
command line.

``layoutopt fit --metric signups`` fits the model of one count column. ``best``, ``score``
and ``propose`` score a posterior (``-p``, the clicks model) alone, or, given further metrics'
posteriors (``--metric signups=signups.nc``), the value of ``--objective`` under the
``--guardrail`` s relative to ``--control`` (an :class:`~layoutopt.score.objective.
ObjectivePosterior`). ``campaign objective`` stores the same settings in a campaign.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from layoutopt.cli import library
from layoutopt.cli.options import DbOpt, NameOpt, load_posterior

__all__ = [
    "ControlOpt",
    "GuardrailOpt",
    "MetricFilesOpt",
    "MetricOpt",
    "ObjectiveOpt",
    "campaign_objective",
    "control_arg",
    "guardrail_arg",
    "objective_arg",
    "scored_posterior",
]

MetricOpt = Annotated[
    str,
    typer.Option(
        "--metric", help="The count column to fit (clicks, or e.g. signups), out of impressions."
    ),
]
MetricFilesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--metric",
        help="A further metric's posterior, NAME=FILE.nc (repeatable); -p is the clicks model.",
    ),
]
ObjectiveOpt = Annotated[
    str | None,
    typer.Option(
        "--objective",
        help="A metric (clicks) or a value per impression, e.g. clicks=1,signups=30,dismissals=-5.",
    ),
]
GuardrailOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--guardrail",
        help="METRIC:MAX_RELATIVE_INCREASE:PROBABILITY, e.g. dismissals:0.10:0.9 (repeatable).",
    ),
]
ControlOpt = Annotated[
    str | None,
    typer.Option("--control", help="The control layout, COMPONENT=LABEL,... (for guardrails)."),
]


def objective_arg(text: str | None):
    """``"clicks"`` as is, ``"clicks=1,signups=30"`` as ``{"clicks": 1.0, "signups": 30.0}``.

    Raises:
        ValueError: for an entry without ``=`` or a weight that is not a number.
    """
    if text is None or "=" not in text:
        return text
    out = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight)
        except ValueError:
            raise ValueError(
                f"--objective {text!r}: {part!r} is not METRIC=WEIGHT, e.g. clicks=1,signups=30"
            ) from None
        if not sep:
            raise ValueError(f"--objective {text!r}: {part!r} is not METRIC=WEIGHT")
    return out


def guardrail_arg(values: Sequence[str] | None) -> dict | None:
    """``["dismissals:0.1:0.9"]`` as ``{"dismissals": {"max_relative_increase": 0.1,
    "probability": 0.9}}`` (None when not given).

    Raises:
        ValueError: for an entry that is not METRIC:INCREASE:PROBABILITY.
    """
    if not values:
        return None
    out = {}
    for v in values:
        parts = v.split(":")
        try:
            name, increase, prob = parts[0], float(parts[1]), float(parts[2])
            if len(parts) != 3 or not name:
                raise IndexError
        except (IndexError, ValueError):
            raise ValueError(
                f"--guardrail {v!r}: expected METRIC:MAX_RELATIVE_INCREASE:PROBABILITY, e.g. "
                "dismissals:0.10:0.9"
            ) from None
        out[name] = {"max_relative_increase": increase, "probability": prob}
    return out


def control_arg(text: str | None) -> dict | None:
    """``"headline=h1,image=a"`` as ``{"headline": "h1", "image": "a"}`` (None if not given).

    Raises:
        ValueError: for an entry without ``=``.
    """
    if text is None:
        return None
    out = {}
    for part in text.split(","):
        name, sep, label = part.partition("=")
        if not sep or not name:
            raise ValueError(f"--control {text!r}: expected COMPONENT=LABEL,...")
        out[name.strip()] = label.strip()
    return out


def scored_posterior(post, metrics, objective, guardrails, control):
    """``post`` alone, or the objective over it (as ``clicks``) and ``--metric`` files.

    Raises:
        ValueError: for a malformed option, an unreadable file, or settings the library
            refuses (a metric without a posterior, guardrails without a control, ...).
    """
    if not metrics and objective is None and not guardrails:
        return post
    posts = {"clicks": post}
    for item in metrics or ():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--metric {item!r}: expected NAME=FILE.nc, e.g. signups=signups.nc")
        posts[name] = load_posterior(Path(path))
    return library.objective.ObjectivePosterior.create(
        posts,
        objective_arg(objective) or "clicks",
        guardrail_arg(guardrails),
        control_arg(control),
    )


def campaign_objective(
    db: DbOpt,
    name: NameOpt = None,
    objective: ObjectiveOpt = None,
    guardrail: GuardrailOpt = None,
    control: ControlOpt = None,
    no_guardrails: Annotated[
        bool, typer.Option("--no-guardrails", help="Remove the campaign's guardrails.")
    ] = False,
) -> None:
    """Show or set what "best" means: the objective, guardrails and their control layout.

    Later ingests read every metric named here (a count column out of impressions); later
    fits fit each of them; the pick, the decision and status use the objective's value over
    the layouts that pass the guardrails.
    """
    with library.campaign.Campaign.open(db, name) as camp:
        if control is not None:
            camp.set_holdout(camp.holdout[0], control_arg(control))
        if objective is not None or guardrail or no_guardrails:
            guards = None if no_guardrails else (guardrail_arg(guardrail) or ())
            camp.set_objective(objective_arg(objective), guards)
        line = camp.settings_line() or "objective: clicks per impression (CTR); no guardrails"
    console = Console(highlight=False, markup=False, soft_wrap=True)
    console.print(line)
