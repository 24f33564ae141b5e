"""One self-contained HTML report of a posterior or of a whole campaign.

The page holds its figures as base64 PNG images (matplotlib, Agg backend) and its tables as
HTML, so it opens in any browser without network access:

- the top layouts with posterior mean CTR, credible interval and P(best) (table and plot);
- main effects per component with intervals (a forest plot on the logit/probit scale);
- heatmaps of the strongest pairwise interactions (by largest absolute posterior mean cell);
- for a campaign, the history: impressions per round, the pick's mean CTR and interval per
  round, and the leader's P(best);
- the fit's diagnostics.

Figures are labelled with the variant labels. Nothing here computes statistics beyond
summarising posterior draws; scores come from :func:`layoutopt.score_grid`.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import pair_list
from layoutopt.score.scoring import score_grid
from layoutopt.util.io import atomic_path, check_output_path

__all__ = ["campaign_report", "posterior_report", "render_html"]

_LABEL = 28  # variant labels are cut to this many characters in figures
_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em;
       color: #222; max-width: 1100px; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f3f3f3; } img { max-width: 100%; } .note { color: #666; }
"""


def _cut(label: Any) -> str:
    """A label for a figure: shortened, with ``$`` escaped (matplotlib reads ``$x$`` as
    mathematics and would show ``x``, or fail on an unbalanced ``$``)."""
    text = str(label)
    text = text if len(text) <= _LABEL else text[: _LABEL - 1] + "…"
    return text.replace("$", r"\$")


def _figure_html(fig, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _interval(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return draws.mean(axis=0), lo, hi


def forest_plot(post: Posterior, level: float = 0.9) -> str:
    """Main effects per component, posterior mean and ``level`` interval, as an ``<img>``."""
    plt = _pyplot()
    space = post.space
    sizes = space.cardinalities
    fig, axes = plt.subplots(
        len(sizes),
        1,
        figsize=(8, 0.9 + 0.32 * sum(sizes) + 0.5 * len(sizes)),
        gridspec_kw={"height_ratios": sizes},
        squeeze=False,
    )
    for k, ax in enumerate(axes[:, 0]):
        draws = np.asarray(post.params.main[k], dtype=float)
        mean, lo, hi = _interval(draws, level)
        y = np.arange(len(mean))[::-1]
        ax.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="o", color="#1f77b4", capsize=3)
        ax.axvline(0.0, color="#999", lw=0.8, ls="--")
        ax.set_yticks(y, [_cut(v) for v in space.variants[k]])
        ax.set_title(_cut(space.components[k]), loc="left", fontsize=10, fontweight="bold")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel(f"main effect ({post.prior.link} scale), mean and {level:.0%} interval")
    fig.tight_layout()
    return _figure_html(fig, "main effects per component")


def strongest_pairs(post: Posterior, n: int = 3) -> list[tuple[int, int, int]]:
    """``(pair position, k, l)`` of the ``n`` pair tables with the largest absolute posterior
    mean cell, strongest first."""
    pairs = pair_list(post.space.num_components)
    strength = [
        float(np.abs(np.asarray(p, dtype=float).mean(axis=0)).max()) if np.size(p) else 0.0
        for p in post.params.pair
    ]
    order = np.argsort(strength)[::-1][:n]
    return [(int(i), *pairs[int(i)]) for i in order if strength[int(i)] > 0.0]


def pair_heatmaps(post: Posterior, n: int = 3) -> str:
    """Heatmaps of the posterior mean of the ``n`` strongest pair tables, as an ``<img>``."""
    plt = _pyplot()
    chosen = strongest_pairs(post, n)
    if not chosen:
        return '<p class="note">The model has no pairwise terms.</p>'
    space = post.space
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.6 * len(chosen), 4.2), squeeze=False)
    for ax, (i, k, l) in zip(axes[0], chosen, strict=True):
        table = np.asarray(post.params.pair[i], dtype=float).mean(axis=0)
        lim = float(np.abs(table).max()) or 1.0
        im = ax.imshow(table, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_yticks(range(table.shape[0]), [_cut(v) for v in space.variants[k]], fontsize=8)
        ax.set_xticks(
            range(table.shape[1]),
            [_cut(v) for v in space.variants[l]],
            fontsize=8,
            rotation=40,
            ha="right",
        )
        ax.set_ylabel(_cut(space.components[k]))
        ax.set_xlabel(_cut(space.components[l]))
        ax.set_title(f"{_cut(space.components[k])} × {_cut(space.components[l])}", fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return _figure_html(fig, "strongest pairwise interactions")


def top_layouts(post: Posterior, top: int = 10, level: float = 0.9) -> tuple[str, str]:
    """The ``top`` layouts by posterior mean CTR: an HTML table and an interval plot."""
    plt = _pyplot()
    frame = score_grid(post, top=top, level=level).to_pandas()
    comps = list(post.space.components)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["#", *comps])
    head += f"<th>mean CTR</th><th>{level:.0%} interval</th><th>P(best)</th>"
    body = []
    for rank, row in enumerate(frame.to_dict("records"), start=1):
        cells = [f'<td class="num">{rank}</td>']
        cells += [f"<td>{html.escape(str(row[c]))}</td>" for c in comps]
        cells.append(f'<td class="num">{100 * row["mean"]:.2f}%</td>')
        cells.append(f'<td class="num">{100 * row["lower"]:.2f}% – {100 * row["upper"]:.2f}%</td>')
        cells.append(f'<td class="num">{row["p_best"]:.3f}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><tr>{head}</tr>{''.join(body)}</table>"
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.35 * len(frame)))
    y = np.arange(len(frame))[::-1]
    mean = 100 * frame["mean"].to_numpy()
    ax.errorbar(
        mean,
        y,
        xerr=[mean - 100 * frame["lower"].to_numpy(), 100 * frame["upper"].to_numpy() - mean],
        fmt="o",
        color="#d62728",
        capsize=3,
    )
    ticks = [
        f"#{r} layout {i}, P(best) {p:.2f}"
        for r, (i, p) in enumerate(zip(frame["index"], frame["p_best"], strict=True), start=1)
    ]
    ax.set_yticks(y, ticks)
    ax.set_xlabel(f"CTR (%), posterior mean and {level:.0%} interval")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return table, _figure_html(fig, "top layouts")


def history_plot(history: pd.DataFrame) -> str:
    """Impressions per round, the pick's mean CTR with interval, and its P(best)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    r = history["round"].to_numpy()
    axes[0].bar(r, history["impressions"].to_numpy(), color="#7f7f7f")
    axes[0].set_title("impressions per round", fontsize=10)
    fitted = history["mean"].notna().to_numpy()
    mean = 100 * history["mean"].to_numpy(dtype=float)
    lo = 100 * history["lower"].to_numpy(dtype=float)
    hi = 100 * history["upper"].to_numpy(dtype=float)
    axes[1].errorbar(
        r[fitted],
        mean[fitted],
        yerr=[mean[fitted] - lo[fitted], hi[fitted] - mean[fitted]],
        fmt="o-",
        capsize=3,
        color="#1f77b4",
    )
    axes[1].set_title("the pick: mean CTR (%) and interval", fontsize=10)
    axes[2].plot(r[fitted], history["p_best"].to_numpy(dtype=float)[fitted], "o-", color="#2ca02c")
    axes[2].set_ylim(0, 1)
    axes[2].set_title("the pick's P(best)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("round")
        ax.set_xticks(r)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _figure_html(fig, "campaign history")


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
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _history_table(history: pd.DataFrame) -> str:
    shown = pd.DataFrame(
        {
            "round": history["round"],
            "proposed at": history["proposed_at"].fillna("").str.slice(0, 16),
            "strategy": history["strategy"],
            "seed": history["seed"],
            "k": history["k"],
            "ingested": history["sources"],
            "impressions": history["impressions"],
            "clicks": history["clicks"],
            "pick": history["pick_index"],
            "mean CTR": [_pct(v) for v in history["mean"]],
            "interval": [
                f"{_pct(lo)} – {_pct(hi)}" if lo == lo else ""
                for lo, hi in zip(history["lower"], history["upper"], strict=True)
            ],
            "P(best)": history["p_best"],
        }
    )
    return _frame_table(shown)


def _pct(x) -> str:
    return "" if x is None or x != x else f"{100.0 * float(x):.2f}%"


def _diagnostics(post: Posterior) -> str:
    items = {"method": post.method, "draws": post.num_draws, "chains": post.num_chains}
    items |= dict(post.diagnostics)
    frame = pd.DataFrame({"diagnostic": list(items), "value": [str(v) for v in items.values()]})
    return _frame_table(frame)


def render_html(
    post: Posterior,
    title: str,
    history: pd.DataFrame | None = None,
    level: float = 0.9,
    note: str | None = None,
) -> str:
    """The report as one HTML string (figures embedded).

    Args:
        post: the posterior to summarise.
        title: the page title.
        history: a campaign's :meth:`~layoutopt.campaign.Campaign.history`, or None.
        level: credible level of every interval.
        note: a line shown under the title (e.g. that data arrived since the fit).

    Returns:
        The HTML document.
    """
    space = post.space
    sizes = zip(space.components, space.cardinalities, strict=True)
    table, plot = top_layouts(post, level=level)
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{space.num_components} components ("
        + ", ".join(f"{html.escape(c)} {n}" for c, n in sizes)
        + f"), {space.num_allowed:,} allowed layouts; {post.method} fit, {post.num_draws} draws"
        + f"; intervals are equal-tailed {level:.0%} credible intervals.</p>",
    ]
    if note:
        parts.append(f'<p class="note">Note: {html.escape(note)}.</p>')
    if history is not None:
        parts += ["<h2>Campaign history</h2>", history_plot(history), _history_table(history)]
    parts += [
        "<h2>Top layouts</h2>",
        table,
        plot,
        "<h2>Main effects per component</h2>",
        forest_plot(post, level),
        "<h2>Strongest pairwise interactions</h2>",
        '<p class="note">Posterior mean of the pair tables with the largest absolute cells.</p>',
        pair_heatmaps(post),
        "<h2>Fit diagnostics</h2>",
        _diagnostics(post),
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


def campaign_report(campaign, path: str | Path, level: float = 0.9) -> Path:
    """Write a campaign's report (history, then the latest fit) to ``path``.

    Raises:
        ValueError: if the campaign has not been fitted, or ``path`` is not a writable
            ``.html`` file.
    """
    check_output_path(path, (".html", ".htm"))
    post = campaign.posterior()
    title = f"Campaign {campaign.name!r}"
    stale = campaign.stale()
    note = f"{stale}; the figures show the latest fit" if stale else None
    return _write(path, render_html(post, title, campaign.history(), level=level, note=note))
