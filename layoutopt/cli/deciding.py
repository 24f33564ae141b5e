"""``layoutopt campaign decide``: can the campaign stop and ship its leader?

::

    layoutopt campaign decide --db D                        # the stored rule's verdict
    layoutopt campaign decide --db D --value-remaining 0.02 --min-rounds 3 --set

Prints one line: ``stop and ship`` or ``continue``, the leader, its P(best), expected loss and
value remaining, and which threshold is met or missed (``docs/stopping.md``). ``--set`` stores
the rule given by the options as the campaign's rule (what every later fit is judged by);
without it the options judge this once. Registered on :data:`layoutopt.cli.campaign.app`;
:func:`decision_line` is the verdict line of ``campaign status``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer
from rich.console import Console

from layoutopt.cli import library
from layoutopt.cli.options import DbOpt, NameOpt

__all__ = ["decide", "decision_line"]


def decide(
    db: DbOpt,
    value_remaining: Annotated[
        float | None,
        typer.Option(
            "--value-remaining", help="Stop when the relative value remaining is at most this."
        ),
    ] = None,
    expected_loss: Annotated[
        float | None,
        typer.Option(
            "--expected-loss",
            help="Stop when the expected loss (CTR units; 0.0001 = 0.01 points) is at most this.",
        ),
    ] = None,
    quantile: Annotated[
        float | None, typer.Option("--quantile", help="Quantile of the value remaining.")
    ] = None,
    min_rounds: Annotated[
        int | None, typer.Option("--min-rounds", help="Rounds before any stop.")
    ] = None,
    min_impressions: Annotated[
        int | None, typer.Option("--min-impressions", help="Impressions before any stop.")
    ] = None,
    set_rule: Annotated[
        bool, typer.Option("--set", help="Store this rule as the campaign's rule.")
    ] = False,
    name: NameOpt = None,
) -> None:
    """Stop and ship, or continue? The stopping rule's verdict on the latest fit."""
    given = {
        "max_value_remaining": value_remaining,
        "max_expected_loss": expected_loss,
        "quantile": quantile,
        "min_rounds": min_rounds,
        "min_impressions": min_impressions,
    }
    given = {k: v for k, v in given.items() if v is not None}
    with library.campaign.Campaign.open(db, name) as camp:
        rule = camp.stop_rule()
        if given:
            if "max_value_remaining" in given or "max_expected_loss" in given:
                # thresholds given replace the stored ones (an unset one is not used)
                given.setdefault("max_value_remaining", None)
                given.setdefault("max_expected_loss", None)
            rule = replace(rule, **given)
        if set_rule:
            camp.set_stop_rule(rule)
        d = camp.decision(rule)
    # markup off: labels print as typed
    Console(highlight=False, markup=False, soft_wrap=True).print(d.line())
    if set_rule:
        Console(stderr=True, highlight=False, markup=False).print(f"stored rule: {rule.to_json()}")


def decision_line(camp) -> str:
    """The verdict line of ``campaign status`` from the store (no numerics are run)."""
    d = camp.latest_decision()
    if d is None:
        return "decision: none recorded for the latest fit; run `campaign decide`"
    return f"decision: {d.line()}"
