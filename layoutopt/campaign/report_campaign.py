"""The campaign sections of the report: the verdict, the traffic, the open round, the checks.

Everything here is read from public :class:`~layoutopt.Campaign` methods (``history``,
``proposals``, ``allocation``, ``observations``, ``sample_ratios``, ``logged``, ``lift``,
``decisions``, ``latest_decision``) and rendered as HTML with every user-given string
(labels, component names, sources) escaped. Layouts are named by their index everywhere.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from layoutopt.campaign.report_svg import sequential_colour
from layoutopt.model.space import LayoutSpace

__all__ = [
    "MAX_TRAFFIC_ROWS",
    "checks_html",
    "evaluation_html",
    "decision_columns",
    "labels_of",
    "open_round_html",
    "traffic_frame",
    "traffic_html",
    "verdict_html",
]

#: the traffic table shows at most this many layouts (the most served)
MAX_TRAFFIC_ROWS = 30


def labels_of(space: LayoutSpace, index: int) -> str:
    """A layout's labels joined with `` / `` (not escaped)."""
    return " / ".join(space.layout(int(index)).values())


def _pct(x, digits: int = 2) -> str:
    return "" if x is None or x != x else f"{100.0 * float(x):.{digits}f}%"


def verdict_html(decision) -> str:
    """The stopping verdict of the latest fit as a box for the top of the page.

    Args:
        decision: :meth:`~layoutopt.Campaign.latest_decision` (a
            :class:`~layoutopt.decide.stopping.Decision`), or None when none is recorded.
    """
    if decision is None:
        return (
            '<div class="verdict none"><b>No stopping verdict</b> is recorded for the latest '
            "fit: run <code>layoutopt campaign decide</code> (or "
            "<code>Campaign.decision()</code>) to judge it.</div>"
        )
    verb = "stop and ship" if decision.stop else "continue"
    kind = "stop" if decision.stop else "go"
    return (
        f'<div class="verdict {kind}"><div class="big">Verdict: {verb}</div>'
        f"<div>leader: layout {decision.leader.index} "
        f"({html.escape(labels_of_best(decision.leader))}), "
        f"P(best) {decision.p_best:.3f}, expected loss {decision.expected_loss:.3g} CTR "
        f"({decision.relative_expected_loss:.2%} of the leader's), value remaining "
        f"{decision.value_remaining:.2%}</div>"
        f'<div class="note">{html.escape(decision.reason)}</div></div>'
    )


def labels_of_best(best) -> str:
    """The labels of a :class:`~layoutopt.score.scoring.BestLayout` joined with `` / ``."""
    return " / ".join(str(v) for v in best.layout.values())


def decision_columns(history: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """``verdict, expected loss, value remaining`` per history row (by its ``fit_id``)."""
    by_fit = {int(r.fit_id): r for r in decisions.itertuples(index=False)}
    out = {"verdict": [], "expected loss": [], "value remaining": []}
    for fid in history["fit_id"]:
        d = by_fit.get(int(fid)) if fid == fid and fid is not None else None
        out["verdict"].append("" if d is None else d.verdict)
        out["expected loss"].append("" if d is None else f"{d.expected_loss:.3g}")
        out["value remaining"].append("" if d is None else _pct(d.value_remaining))
    return pd.DataFrame(out)


def traffic_frame(campaign) -> pd.DataFrame:
    """Impressions and clicks per (layout index, round) of everything ingested.

    Returns:
        Columns ``index, round, impressions, clicks`` (empty when nothing is ingested).
    """
    try:
        obs = campaign.observations(time=True)
    except ValueError:
        return pd.DataFrame(columns=["index", "round", "impressions", "clicks"])
    rounds = obs.round if obs.round is not None else np.zeros(len(obs.impressions), np.int64)
    frame = pd.DataFrame(
        {
            "index": campaign.space.indices(obs.codes),
            "round": rounds,
            "impressions": obs.impressions,
            "clicks": obs.clicks,
        }
    )
    return frame.groupby(["index", "round"], as_index=False)[["impressions", "clicks"]].sum()


def traffic_html(campaign, max_rows: int = MAX_TRAFFIC_ROWS) -> str:
    """The tested layouts and the impressions each got per round, as a heat table.

    A cell's colour is the layout's share of the round's impressions; its hover names the
    layout, its labels, impressions, clicks and the planned weight of that round.
    """
    frame = traffic_frame(campaign)
    if frame.empty:
        return '<p class="note">Nothing ingested yet.</p>'
    space = campaign.space
    props = campaign.proposals()
    weight = {}
    if len(props) and "weight" in props.columns and "index" in props.columns:
        for r in props.itertuples(index=False):
            weight[(int(r.index), int(r.round))] = float(r.weight)
    imp = frame.pivot_table(index="index", columns="round", values="impressions", fill_value=0)
    clk = frame.pivot_table(index="index", columns="round", values="clicks", fill_value=0)
    per_round = imp.sum(axis=0)
    order = imp.sum(axis=1).sort_values(ascending=False, kind="stable").index
    shown = list(order[:max_rows])
    head = "".join(f"<th>round {int(r)}</th>" for r in imp.columns)
    rows = []
    for i in shown:
        cells = [f'<td class="num">{int(i)}</td>', f"<td>{html.escape(labels_of(space, i))}</td>"]
        for r in imp.columns:
            n, c = int(imp.at[i, r]), int(clk.at[i, r])
            share = n / per_round[r] if per_round[r] else 0.0
            w = weight.get((int(i), int(r)))
            tip = f"layout {int(i)}: {labels_of(space, i)}\nround {int(r)}: {n:,} impressions"
            tip += f", {c:,} clicks" + (f" (CTR {100 * c / n:.2f}%)" if n else "")
            tip += f", {share:.1%} of the round" + ("" if w is None else f"; planned {w:.1%}")
            ink = "color:#fff;" if share > 0.45 else ""
            cells.append(
                f'<td class="num heat" style="background:{sequential_colour(share)};{ink}" '
                f'title="{html.escape(tip)}">{n:,}</td>'
            )
        cells.append(f'<td class="num">{int(imp.loc[i].sum()):,}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = (
        f"{len(order)} layouts tested; each cell is the layout's impressions in that round, "
        "shaded by its share of the round's impressions (hover for clicks and the planned "
        "weight)."
    )
    if len(order) > len(shown):
        rest = int(imp.loc[order[len(shown) :]].to_numpy().sum())
        note += (
            f" Showing the {len(shown)} most served; the other {len(order) - len(shown)} "
            f"got {rest:,} impressions in all."
        )
    return (
        f'<p class="note">{note}</p><div class="scroll"><table><tr><th>index</th>'
        f"<th>layout</th>{head}<th>total</th></tr>{''.join(rows)}</table></div>"
    )


def open_round_html(campaign, history: pd.DataFrame) -> str:
    """The current round's allocation (:meth:`~layoutopt.Campaign.allocation`) with its
    weights, and whether it is still open (nothing ingested for it yet)."""
    try:
        doc = campaign.allocation()
    except ValueError:
        return '<p class="note">Nothing proposed yet: run <code>campaign propose</code>.</p>'
    r = int(doc["round"])
    mine = history.loc[history["round"] == r, "impressions"]
    got = int(mine.sum()) if len(mine) else 0
    state = (
        f"Round {r} is <b>open</b>: nothing ingested for it yet; serve these layouts by "
        "their weights (<code>campaign assign</code> / <code>campaign export</code>)."
        if got == 0
        else f"Round {r} has been answered ({got:,} impressions ingested); propose the next."
    )
    comps = list(doc["components"])
    segs = list(doc.get("segments") or [])
    cols = ["index", *comps, *segs, "weight"]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for row in sorted(doc["layouts"], key=lambda d: -float(d["weight"])):
        cells = [f'<td class="num">{int(row["index"])}</td>']
        cells += [f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in comps + segs]
        cells.append(f'<td class="num">{float(row["weight"]):.1%}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    hold = ""
    if doc.get("holdout"):
        ctl = doc.get("control") or {}
        hold = (
            f" A holdout of {float(doc['holdout']):.1%} of units is served the control, layout "
            f"{html.escape(str(ctl.get('index', '?')))}."
        )
    return (
        f"<p>{state}{hold}</p><div class='scroll'><table><tr>{head}</tr>{''.join(body)}"
        "</table></div>"
    )


def checks_html(campaign) -> str:
    """One sample-ratio line per round (and segment) and the holdout lift when present."""
    space = campaign.space
    lines = []
    for rc in campaign.sample_ratios():
        c = rc.check
        where = f"round {rc.round}" + ("" if rc.segment is None else f" {rc.segment}")
        total = int(c.observed.sum())
        if c.mismatch:
            i = int(rc.index[c.worst])
            text = (
                f"<li class='bad'>⚠ {html.escape(where)}: sample ratio <b>mismatch</b>, p = "
                f"{c.p_value:.3g} ({total:,} impressions); worst layout {i} "
                f"({html.escape(labels_of(space, i))}): {int(c.observed[c.worst]):,} served, "
                f"{c.expected[c.worst]:,.1f} planned</li>"
            )
        else:
            text = (
                f"<li>{html.escape(where)}: sample ratio ok ({total:,} impressions, chi-square "
                f"{c.statistic:.1f}, {c.dof} dof, p = {c.p_value:.3g})</li>"
            )
        lines.append(text)
    logged = campaign.logged()
    if len(logged) and logged["holdout"].any() and (~logged["holdout"].astype(bool)).any():
        lift = campaign.lift()
        lines.append(
            f"<li>holdout lift: {100 * lift.lift:+.1f}% [{100 * lift.lower:+.1f}%, "
            f"{100 * lift.upper:+.1f}%] ({lift.level:.0%} interval; P(campaign better) "
            f"{lift.p_better:.3f}; campaign CTR {_pct(lift.campaign_ctr)} on "
            f"{lift.campaign_impressions:,} impressions, holdout {_pct(lift.holdout_ctr)} on "
            f"{lift.holdout_impressions:,})</li>"
        )
    if not lines:
        return (
            '<p class="note">No round to check: sample ratios need ingested rows with a '
            "<code>round</code> column (as <code>campaign assign</code> writes them), the "
            "holdout lift rows with a <code>holdout</code> column.</p>"
        )
    return "<ul class='checks'>" + "".join(lines) + "</ul>"


def evaluation_html(evaluations) -> str:
    """The off-policy estimates of other allocations as one table.

    Args:
        evaluations: ``{name: [Estimate, ...]}`` (:meth:`~layoutopt.Campaign.evaluate` of
            each allocation, named by the caller).
    """
    rows = []
    for name, estimates in evaluations.items():
        for e in estimates:
            rows.append(
                f"<tr><td>{html.escape(str(name))}</td><td>{html.escape(e.estimator)}</td>"
                f"<td>{_pct(e.value)}</td><td>{_pct(e.lower)} – {_pct(e.upper)} "
                f"({e.level:.0%})</td></tr>"
            )
    return (
        "<p>What each allocation would have earned on the logged traffic, from the logged "
        "propensities (IPS, self-normalised IPS, doubly robust with the latest fit as the "
        "direct method), with bootstrap intervals.</p><table><tr><th>allocation</th>"
        "<th>estimator</th><th>CTR</th><th>interval</th></tr>" + "".join(rows) + "</table>"
    )
