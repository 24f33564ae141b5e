"""The rich tables and number formats the commands print.

Pure functions from library results (frames, records, campaign results) to
:class:`rich.table.Table` objects or text; the commands print them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.table import Table

__all__ = [
    "LABEL_WIDTH",
    "best_record",
    "best_table",
    "by_segment_table",
    "checkpoints",
    "fmt_rate",
    "fmt_value",
    "layout_text",
    "regret_table",
    "scores_table",
]

LABEL_WIDTH = 22  # variant labels are cut to this many characters in tables


def fmt_rate(x: float) -> str:
    return f"{100.0 * float(x):.2f}%"


def fmt_value(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if isinstance(v, bool) or f == int(f) and abs(f) < 1e12:
        return str(v) if isinstance(v, bool) else str(int(f))
    return f"{f:.4g}"


def scores_table(frame, title: str, level: float, labels: Sequence[str]) -> Table:
    """A rich table of scored layouts (``to_pandas`` columns, optionally ``true_ctr``).

    One line per layout: long variant labels are cut with an ellipsis, and the interval is
    shown next to the mean.
    """
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right")
    for name in labels:
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=LABEL_WIDTH)
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
            f"{fmt_rate(row['mean'])} [{fmt_rate(row['lower'])}, {fmt_rate(row['upper'])}]"
        )
        cells.append(f"{row['p_best']:.3f}")
        if truth:
            cells.append(fmt_rate(row["true_ctr"]))
        table.add_row(*cells)
    return table


def best_record(pick) -> dict:
    return {
        "layout": dict(pick.layout),
        "index": int(pick.index),
        "mean": float(pick.mean),
        "lower": float(pick.lower),
        "upper": float(pick.upper),
        "p_best": float(pick.p_best),
        "exact": bool(pick.exact),
        "no_evidence": pick.no_evidence,
    }


def best_table(record: dict, level: float, true_ctr: float | None = None) -> Table:
    table = Table(title="Best layout", title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for comp, label in record["layout"].items():
        table.add_row(comp, str(label))
    table.add_row("index", str(record["index"]))
    table.add_row("mean CTR", fmt_rate(record["mean"]))
    table.add_row(
        f"{level:.0%} interval", f"{fmt_rate(record['lower'])} - {fmt_rate(record['upper'])}"
    )
    table.add_row("P(best)", f"{record['p_best']:.3f}")
    if not record["exact"]:
        table.add_row("search", "candidate search (space too large to enumerate)")
    if true_ctr is not None:
        table.add_row("true CTR", fmt_rate(true_ctr))
    return table


def by_segment_table(frame, space, level: float) -> Table:
    table = Table(title="Best layout per segment", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("segment", "share", *space.components):
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=LABEL_WIDTH)
    table.add_column(f"mean CTR [{level:.0%} interval]", justify="right", no_wrap=True)
    table.add_column("P(best)", justify="right", no_wrap=True)
    for row in frame.to_dict("records"):
        cells = [row["segment"], f"{row['share']:.1%}"] + [str(row[c]) for c in space.components]
        cells.append(
            f"{fmt_rate(row['mean'])} [{fmt_rate(row['lower'])}, {fmt_rate(row['upper'])}]"
        )
        cells.append(f"{row['p_best']:.3f}")
        table.add_row(*cells)
    return table


def checkpoints(budget: int, batch_size: int) -> list[int]:
    """About six impression counts, log-spaced from the first round to the budget."""
    first = min(batch_size, budget)
    if first >= budget:
        return [budget]
    points = {budget}
    for x in [first * (budget / first) ** (i / 5) for i in range(5)]:
        points.add(int(math.ceil(x / first) * first))
    return sorted(p for p in points if p <= budget)


def regret_table(results, budget: int, batch_size: int) -> Table:
    """Regret by impressions served, in the words of the API and the README.

    ``local`` is the round's ``local_regret`` (the mean regret of the impressions served in
    the round that reaches the checkpoint), ``simple`` its ``simple_regret`` (of the layout
    the policy would ship then); :meth:`CampaignResult.summary` has both.
    """
    table = Table(
        title="Regret (true best CTR minus CTR) by impressions served: local (of the "
        "round's traffic) and simple (of the pick)",
        title_justify="left",
    )
    table.add_column("impressions", justify="right")
    for res in results:
        table.add_column(f"{res.name}\nlocal", justify="right")
        table.add_column(f"{res.name}\nsimple", justify="right")
    summaries = [res.summary(checkpoints(budget, batch_size)) for res in results]
    for c in summaries[0].index:
        row = [f"{c:,}"]
        for s in summaries:
            if c in s.index:
                row += [
                    fmt_rate(s.loc[c, "local_regret"]),
                    fmt_rate(s.loc[c, "simple_regret"]),
                ]
            else:
                row += ["", ""]
        table.add_row(*row)
    return table


def layout_text(layout: dict) -> str:
    return ", ".join(f"{c}={v}" for c, v in layout.items())
