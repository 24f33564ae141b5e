"""One self-contained HTML report of a posterior or of a whole campaign, to act on.

The page needs no network: tables and heat tables are HTML, the top-layouts plot is inline
SVG (hover a row for the layout's labels and interval), the forest plot and the history are
base64 PNG images (matplotlib, Agg backend). Layouts are named by their index everywhere.
For a campaign, from the top:

- the stopping verdict of the latest fit (stop and ship / continue, P(best), expected loss,
  value remaining), and the diagnostics' warning lines when one is bad;
- the open round: the current allocation's layouts and weights;
- the history per round (with the verdict of each fit), the tested layouts and the
  impressions each received per round, the sample-ratio line of each round and the
  holdout lift;
- the top layouts (table with the layout index, and plot), main effects, the strongest
  pair tables on one shared colour scale, and the fit's diagnostics with their meaning.

Every user-given string (labels, component names, the campaign's name, sources) is escaped.
Nothing here computes statistics beyond summarising posterior draws and what the campaign's
public methods return; scores come from :func:`layoutopt.score_grid`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from layoutopt.campaign.report_campaign import (
    checks_html,
    decision_columns,
    evaluation_html,
    open_round_html,
    traffic_html,
    verdict_html,
)
from layoutopt.campaign.report_figures import (
    diagnostic_warnings,
    diagnostics_html,
    forest_plot,
    history_plot,
    pair_heatmaps,
    strongest_pairs,
)
from layoutopt.campaign.report_svg import IntervalRow, interval_svg
from layoutopt.infer.posterior import Posterior
from layoutopt.score.scoring import score_grid
from layoutopt.util.io import atomic_path, check_output_path

__all__ = ["campaign_report", "posterior_report", "render_html", "strongest_pairs"]

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em;
       color: #222; max-width: 1200px; line-height: 1.4; }
h1 { font-size: 1.6em; overflow-wrap: anywhere; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f3f3f3; } img { max-width: 100%; height: auto; } .note { color: #555; }
.scroll { overflow-x: auto; max-width: 100%; }
.verdict { border-radius: 6px; padding: .7em 1em; margin: 1em 0; border: 2px solid; }
.verdict .big { font-size: 1.3em; font-weight: bold; }
.verdict.stop { background: #e8f5e9; border-color: #2e7d32; }
.verdict.go { background: #fff8e1; border-color: #f9a825; }
.verdict.none { background: #f3f3f3; border-color: #bbb; }
.warn, li.bad { color: #b71c1c; font-weight: 600; } tr.bad td { background: #ffebee; }
.ok { color: #2e7d32; } ul.checks li { margin: .2em 0; }
.pairs { display: flex; flex-wrap: wrap; gap: 0 1.5em; align-items: flex-start; }
table.pair caption { font-weight: bold; text-align: left; padding: .2em 0; }
td.heat { min-width: 3.5em; }
svg.chart { width: 100%; max-width: 820px; min-width: 500px; height: auto; font-size: 13px; }
.scroll img { min-width: 720px; }
svg.chart .axis { fill: #555; font-size: 12px; } svg.chart .grid { stroke: #e4e4e4; }
svg.chart .ci { stroke: #d62728; stroke-width: 2.5; } svg.chart .dot { fill: #d62728; }
svg.chart .hit { fill: transparent; } svg.chart .row:hover .hit { fill: #fdeaea; }
@media (max-width: 600px) { body { margin: .6em; } table { font-size: .8em; }
  th, td { padding: .2em .35em; } }
"""


def _pct(x) -> str:
    return "" if x is None or x != x else f"{100.0 * float(x):.2f}%"


def top_layouts(post: Posterior, top: int = 10, level: float = 0.9) -> tuple[str, str]:
    """The ``top`` layouts by posterior mean CTR: an HTML table (with each layout's index)
    and an inline SVG interval plot naming them by index (hover for labels and interval)."""
    frame = score_grid(post, top=top, level=level).to_pandas()
    comps = list(post.space.components)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["#", "index", *comps])
    head += f"<th>mean CTR</th><th>{level:.0%} interval</th><th>P(best)</th>"
    body, rows = [], []
    for rank, row in enumerate(frame.to_dict("records"), start=1):
        cells = [f'<td class="num">{rank}</td>', f'<td class="num">{int(row["index"])}</td>']
        cells += [f"<td>{html.escape(str(row[c]))}</td>" for c in comps]
        cells.append(f'<td class="num">{_pct(row["mean"])}</td>')
        cells.append(f'<td class="num">{_pct(row["lower"])} – {_pct(row["upper"])}</td>')
        cells.append(f'<td class="num">{row["p_best"]:.3f}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
        labels = " / ".join(str(row[c]) for c in comps)
        rows.append(
            IntervalRow(rank, int(row["index"]), labels, float(row["mean"]),
                        float(row["lower"]), float(row["upper"]), float(row["p_best"]))
        )  # fmt: skip
    table = f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"
    return table, f"<div class='scroll'>{interval_svg(rows, level, 'top layouts')}</div>"


def _frame_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for rec in frame.itertuples(index=False):
        cells = []
        for v in rec:
            if isinstance(v, float) and np.isnan(v):
                text = ""
            elif isinstance(v, float):
                text = f"{v:.4g}"
            else:
                text = "" if v is None else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(rows)}</table></div>"


def _history_table(history: pd.DataFrame, decisions: pd.DataFrame | None = None) -> str:
    pick = [
        "" if i is None or i != i else str(int(i)) for i in history["pick_index"].astype(object)
    ]
    how = [
        s if k != k or k is None else f"{s}, k={int(k)}, seed {int(seed)}"
        for s, k, seed in zip(history["strategy"], history["k"], history["seed"], strict=True)
    ]
    shown = pd.DataFrame(
        {
            "round": history["round"],
            "proposed": history["proposed_at"].fillna("").str.slice(0, 10),
            "strategy": how,
            "ingested": history["sources"],
            "impressions": [f"{int(n):,}" for n in history["impressions"]],
            "clicks": [f"{int(n):,}" for n in history["clicks"]],
            "pick (index)": pick,
            "mean CTR": [_pct(v) for v in history["mean"]],
            "interval": [
                f"{_pct(lo)}–{_pct(hi)}" if lo == lo else ""
                for lo, hi in zip(history["lower"], history["upper"], strict=True)
            ],
            "P(best)": history["p_best"],
        }
    )
    if decisions is not None and len(decisions):
        shown = pd.concat([shown, decision_columns(history, decisions)], axis=1)
    return _frame_table(shown)


def _campaign_parts(
    campaign, post: Posterior, history: pd.DataFrame, evaluations=None
) -> tuple[list, list]:
    """The campaign's parts: those above the posterior's sections, and the history ones."""
    top = [verdict_html(campaign.latest_decision())]
    for line in (campaign.settings_line(), campaign.exclusions()):
        if line:  # what "best" means, and which layouts the guardrails exclude and why
            top.append(f"<p class='note'>{html.escape(line)}</p>")
    warn = diagnostic_warnings(dict(post.diagnostics))
    if warn:
        top.append(
            "<p class='warn'>⚠ The fit's diagnostics look bad (see Fit diagnostics): "
            + html.escape("; ".join(warn))
            + "</p>"
        )
    top += ["<h2>Open round</h2>", open_round_html(campaign, history)]
    decisions = campaign.decisions()
    mid = [
        "<h2>Campaign history</h2>",
        f"<div class='scroll'>{history_plot(history)}</div>",
        _history_table(history, decisions),
        "<h2>Tested layouts and their traffic</h2>",
        traffic_html(campaign),
        "<h2>Sample ratios and holdout</h2>",
        checks_html(campaign),
    ]
    if evaluations:
        mid += ["<h2>Off-policy evaluation</h2>", evaluation_html(evaluations)]
    return top, mid


def render_html(
    post: Posterior,
    title: str,
    history: pd.DataFrame | None = None,
    level: float = 0.9,
    note: str | None = None,
    *,
    campaign=None,
    evaluations=None,
) -> str:
    """The report as one HTML string (figures embedded).

    Args:
        post: the posterior to summarise.
        title: the page title.
        history: a campaign's :meth:`~layoutopt.campaign.Campaign.history`, or None.
        level: credible level of every interval.
        note: a line shown under the title (e.g. that data arrived since the fit).
        campaign: the :class:`~layoutopt.Campaign` whose verdict, open round, traffic and
            checks to show (with ``history``), or None.
        evaluations: ``{name: estimates}`` of other allocations to show (with ``campaign``).

    Returns:
        The HTML document.
    """
    space = post.space
    sizes = zip(space.components, space.cardinalities, strict=True)
    table, plot = top_layouts(post, level=level)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{space.num_components} components ("
        + ", ".join(f"{html.escape(c)} {n}" for c, n in sizes)
        + f"), {space.num_allowed:,} allowed layouts; {post.method} fit, {post.num_draws} draws"
        + f"; intervals are equal-tailed {level:.0%} credible intervals. Layouts are named "
        "by their index everywhere.</p>",
    ]
    if note:
        parts.append(f'<p class="note">Note: {html.escape(note)}.</p>')
    mid = []
    if campaign is not None and history is not None:
        top, mid = _campaign_parts(campaign, post, history, evaluations)
        parts += top
    elif history is not None:
        mid = ["<h2>Campaign history</h2>", history_plot(history), _history_table(history)]
    parts += mid
    parts += [
        "<h2>Top layouts</h2>",
        table,
        '<p class="note">Hover a row for the layout\'s labels and interval.</p>',
        plot,
        "<h2>Main effects per component</h2>",
        forest_plot(post, level),
        "<h2>Strongest pairwise interactions</h2>",
        pair_heatmaps(post, level=level),
        "<h2>Fit diagnostics</h2>",
        diagnostics_html(post),
        "</body></html>",
    ]
    return "\n".join(parts)


def _write(path: str | Path, text: str) -> Path:
    path = check_output_path(path, (".html", ".htm"))
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def posterior_report(post: Posterior, path: str | Path, level: float = 0.9) -> Path:
    """Write the report of one posterior to ``path`` (HTML, written atomically).

    Raises:
        ValueError: if ``path`` is not an ``.html`` file in an existing directory.
    """
    check_output_path(path, (".html", ".htm"))
    return _write(path, render_html(post, "layoutopt report", level=level))


def campaign_report(campaign, path: str | Path, level: float = 0.9, evaluate=None) -> Path:
    """Write a campaign's report (verdict, open round, history, traffic, checks, then the
    latest fit) to ``path``.

    Args:
        campaign: the :class:`~layoutopt.Campaign`.
        path: the ``.html`` file.
        level: credible level of every interval.
        evaluate: other allocations to evaluate off-policy and show: ``{name: allocation
            document or its JSON file}``, or a list of JSON files (named by file name).

    Raises:
        ValueError: if the campaign has not been fitted, or ``path`` is not a writable
            ``.html`` file.
    """
    check_output_path(path, (".html", ".htm"))
    post = campaign.posterior()
    title = f"Campaign {campaign.name!r}"
    stale = campaign.stale()
    lines = [f"{stale}; the figures show the latest fit" if stale else None]
    lines.append(campaign.best().no_evidence)  # the one "no evidence yet" line, or None
    note = "; ".join(line for line in lines if line) or None
    if evaluate is not None and not isinstance(evaluate, Mapping):
        evaluate = {Path(p).name: p for p in evaluate}
    evaluations = {name: campaign.evaluate(doc) for name, doc in (evaluate or {}).items()}
    text = render_html(
        post,
        title,
        campaign.history(),
        level=level,
        note=note,
        campaign=campaign,
        evaluations=evaluations,
    )
    return _write(path, text)
