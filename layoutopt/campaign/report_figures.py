"""The posterior's figures and diagnostics for the report.

- main effects per component (a forest plot, matplotlib PNG);
- the strongest pair tables as HTML heat tables on one shared colour scale: real text, so
  labels are readable at any width and never cut, each cell hovering with its mean and
  interval;
- a campaign's history plot (matplotlib PNG);
- the fit's diagnostics, each with its meaning and a warning when it is bad.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from layoutopt.campaign.report_svg import diverging_colour
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import pair_list

__all__ = [
    "DIAGNOSTIC_LIMITS",
    "diagnostic_warnings",
    "diagnostics_html",
    "figure_html",
    "forest_plot",
    "history_plot",
    "pair_heatmaps",
    "pyplot",
    "strongest_pairs",
]

_LABEL = 28  # variant labels are cut to this many characters in matplotlib figures


class _Limit(NamedTuple):
    meaning: str
    bad: Any  # value -> True when it should be warned about
    rule: str


#: what each diagnostic means and when the report warns about it
DIAGNOSTIC_LIMITS = {
    "max_r_hat": _Limit(
        "largest split R-hat over parameters: chains agree when it is near 1",
        lambda v: not float(v) <= 1.01,
        "warn above 1.01",
    ),
    "min_ess": _Limit(
        "smallest effective sample size: independent draws' worth behind the least "
        "certain parameter",
        lambda v: not float(v) >= 400,
        "warn below 400",
    ),
    "num_divergences": _Limit(
        "NUTS divergent transitions: regions the sampler could not explore",
        lambda v: int(v) > 0,
        "warn above 0",
    ),
    "converged": _Limit(
        "the Laplace fit's Newton iterations reached the posterior mode",
        lambda v: not bool(v),
        "warn when false",
    ),
    "iterations": _Limit("Newton iterations the Laplace fit took", lambda v: False, ""),
    "newton_decrement": _Limit(
        "Newton decrement at the end: near 0 at the mode", lambda v: False, ""
    ),
    "log_evidence": _Limit(
        "Laplace approximation of log p(data): compares priors on the same data",
        lambda v: False,
        "",
    ),
    "half_life": _Limit(
        "rounds after which older data count half (None: not discounted)", lambda v: False, ""
    ),
    "change_round": _Limit(
        "half_life='auto' found a change of taste here: earlier rounds are not used",
        lambda v: False,
        "",
    ),
    "half_life_auto": _Limit(
        "the discount half_life='auto' chose: the best one-round-ahead prediction of each "
        "round from the rounds before it (docs/drift.md)",
        lambda v: False,
        "",
    ),
    "drift_scores": _Limit(
        "each candidate discount's prequential log score minus that of no discounting (nats)",
        lambda v: False,
        "",
    ),
}


def cut(label: Any) -> str:
    """A label for a matplotlib figure: shortened, with ``$`` escaped (matplotlib reads
    ``$x$`` as mathematics and would show ``x``, or fail on an unbalanced ``$``)."""
    text = str(label)
    text = text if len(text) <= _LABEL else text[: _LABEL - 1] + "…"
    return text.replace("$", r"\$")


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_html(fig, alt: str) -> str:
    """A matplotlib figure as an ``<img>`` holding a base64 PNG (the figure is closed)."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _interval(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return draws.mean(axis=0), lo, hi


def forest_plot(post: Posterior, level: float = 0.9) -> str:
    """Main effects per component, posterior mean and ``level`` interval, as an ``<img>``."""
    plt = pyplot()
    space = post.space
    sizes = space.cardinalities
    fig, axes = plt.subplots(
        len(sizes),
        1,
        figsize=(8, 0.9 + 0.36 * sum(sizes) + 0.5 * len(sizes)),
        gridspec_kw={"height_ratios": sizes},
        squeeze=False,
    )
    for k, ax in enumerate(axes[:, 0]):
        draws = np.asarray(post.params.main[k], dtype=float)
        mean, lo, hi = _interval(draws, level)
        y = np.arange(len(mean))[::-1]
        ax.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="o", color="#1f77b4", capsize=3)
        ax.axvline(0.0, color="#999", lw=0.8, ls="--")
        ax.set_yticks(y, [cut(v) for v in space.variants[k]], fontsize=11)
        ax.set_title(cut(space.components[k]), loc="left", fontsize=12, fontweight="bold")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel(f"main effect ({post.prior.link} scale), mean and {level:.0%} interval")
    fig.tight_layout()
    return figure_html(fig, "main effects per component")


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


def pair_heatmaps(post: Posterior, n: int = 3, level: float = 0.9) -> str:
    """The ``n`` strongest pair tables as HTML heat tables on one shared colour scale."""
    chosen = strongest_pairs(post, n)
    if not chosen:
        return '<p class="note">The model has no pairwise terms.</p>'
    space = post.space
    draws = {i: np.asarray(post.params.pair[i], dtype=float) for i, _, _ in chosen}
    limit = max(float(np.abs(d.mean(axis=0)).max()) for d in draws.values())
    e = html.escape
    parts = [
        f'<p class="note">One colour scale for every table: blue {-limit:.3f} … white 0 … '
        f"red {limit:+.3f} ({post.prior.link} scale, posterior mean; hover a cell for its "
        f"{level:.0%} interval).</p><div class='pairs'>"
    ]
    for i, k, l in chosen:
        mean, lo, hi = _interval(draws[i], level)
        ck, cl = space.components[k], space.components[l]
        head = "".join(f"<th>{e(str(v))}</th>" for v in space.variants[l])
        rows = []
        for a, va in enumerate(space.variants[k]):
            cells = [f"<th>{e(str(va))}</th>"]
            for b, vb in enumerate(space.variants[l]):
                m = float(mean[a, b])
                tip = (f"{ck} = {va}, {cl} = {vb}: {m:+.3f} "
                       f"[{float(lo[a, b]):+.3f}, {float(hi[a, b]):+.3f}]")  # fmt: skip
                ink = "color:#fff;" if abs(m) > 0.6 * limit else ""
                cells.append(
                    f'<td class="num heat" style="background:{diverging_colour(m, limit)};'
                    f'{ink}" title="{e(tip)}">{m:+.3f}</td>'
                )
            rows.append("<tr>" + "".join(cells) + "</tr>")
        parts.append(
            f"<div class='scroll'><table class='pair'><caption>{e(ck)} × {e(cl)}</caption>"
            f"<tr><th>{e(ck)} \\ {e(cl)}</th>{head}</tr>{''.join(rows)}</table></div>"
        )
    parts.append("</div>")
    return "".join(parts)


def history_plot(history: pd.DataFrame) -> str:
    """Impressions per round, the pick's mean CTR with interval, and its P(best)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    r = history["round"].to_numpy()
    axes[0].bar(r, history["impressions"].to_numpy(), color="#7f7f7f")
    axes[0].set_title("impressions per round", fontsize=11)
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
    for x, y, i in zip(r[fitted], mean[fitted], history["pick_index"][fitted], strict=True):
        axes[1].annotate(f"layout {int(i)}", (x, y), textcoords="offset points", xytext=(6, 4))
    axes[1].set_title("the pick: mean CTR (%) and interval", fontsize=11)
    axes[2].plot(r[fitted], history["p_best"].to_numpy(dtype=float)[fitted], "o-", color="#2ca02c")
    axes[2].set_ylim(0, 1)
    axes[2].set_title("the pick's P(best)", fontsize=11)
    for ax in axes:
        ax.set_xlabel("round")
        ax.set_xticks(r)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_html(fig, "campaign history")


def diagnostic_warnings(diagnostics: dict[str, Any]) -> list[str]:
    """One line per bad diagnostic (``DIAGNOSTIC_LIMITS``), e.g. ``max_r_hat 1.05 (warn
    above 1.01): ...``; empty when all are fine."""
    out = []
    for name, value in diagnostics.items():
        limit = DIAGNOSTIC_LIMITS.get(name)
        try:
            bad = limit is not None and limit.bad(value)
        except (TypeError, ValueError):
            bad = False
        if bad:
            out.append(f"{name} = {_show(value)} ({limit.rule}): {limit.meaning}")
    return out


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_show(x)}" for k, x in v.items())
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def diagnostics_html(post: Posterior) -> str:
    """The fit's diagnostics with their meaning, and a warning line for each bad one."""
    items = {"method": post.method, "draws": post.num_draws, "chains": post.num_chains}
    items |= {k: v for k, v in post.diagnostics.items() if k != "warnings"}
    warn = diagnostic_warnings(items)
    e = html.escape
    rows = []
    for name, value in items.items():
        limit = DIAGNOSTIC_LIMITS.get(name)
        bad = any(w.startswith(f"{name} = ") for w in warn)
        mark = ' class="bad"' if bad else ""
        meaning = (
            "" if limit is None else limit.meaning + (f" ({limit.rule})" if limit.rule else "")
        )
        rows.append(
            f"<tr{mark}><td>{e(name)}</td><td class='num'>{e(_show(value))}</td>"
            f"<td>{e(meaning)}</td></tr>"
        )
    for w in post.diagnostics.get("warnings", []) or []:
        warn.append(f"fit warning: {w}")
    lines = "".join(f"<p class='warn'>⚠ {e(w)}</p>" for w in warn)
    if not warn:
        lines = "<p class='ok'>✓ No diagnostic is out of bounds.</p>"
    table = (
        "<table><tr><th>diagnostic</th><th>value</th><th>meaning</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return lines + f"<div class='scroll'>{table}</div>"
