"""Hand-written inline SVG and coloured HTML cells for the report: no library, no network.

Every mark carries a ``<title>`` child (or a ``title`` attribute on a table cell), which
browsers show on hover: a layout's index, its labels and its interval. Text is escaped with
:func:`html.escape` (valid for SVG inside HTML as well). The SVG scales to the page width
through its ``viewBox``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["IntervalRow", "diverging_colour", "interval_svg", "sequential_colour"]

_WIDTH = 640  # viewBox width; the left column names layouts by rank and index
_LEFT = 150
_RIGHT = 70
_ROW = 26


class IntervalRow(NamedTuple):
    """One layout of an interval plot.

    Attributes:
        rank: its rank by posterior mean (1 is the leader).
        index: its layout index (the one index used everywhere in the report).
        labels: its variant labels joined in words (shown on hover).
        mean, lower, upper: posterior mean CTR and interval ends (fractions).
        p_best: its P(best).
    """

    rank: int
    index: int
    labels: str
    mean: float
    lower: float
    upper: float
    p_best: float


def _ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    step = (hi - lo) / n
    mag = 10.0 ** np.floor(np.log10(step))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= step), default=step)
    return np.arange(np.ceil(lo / step) * step, hi + 1e-12, step)


def interval_svg(rows: Sequence[IntervalRow], level: float, caption: str) -> str:
    """An interval plot of CTRs (percent), one row per layout, as inline SVG.

    Args:
        rows: the layouts, drawn top to bottom.
        level: the intervals' credible level (for the hover text and the axis).
        caption: the accessible name of the figure (escaped here).

    Returns:
        An ``<svg>`` element whose rows hover with the layout's labels and interval.
    """
    lo = min(r.lower for r in rows) * 100
    hi = max(r.upper for r in rows) * 100
    pad = 0.05 * (hi - lo) or 0.1
    lo, hi = max(lo - pad, 0.0), hi + pad
    plot = _WIDTH - _LEFT - _RIGHT
    height = 40 + _ROW * len(rows) + 34

    def x(v: float) -> float:
        return _LEFT + plot * (100 * v - lo) / (hi - lo)

    out = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="{html.escape(caption)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{_LEFT}" y="16" class="axis">CTR (%), posterior mean and {level:.0%} '
        "interval</text>",
        f'<text x="{_WIDTH - 4}" y="16" class="axis" text-anchor="end">P(best)</text>',
    ]
    bottom = 30 + _ROW * len(rows)
    for t in _ticks(lo, hi):
        tx = _LEFT + plot * (t - lo) / (hi - lo)
        out.append(f'<line x1="{tx:.1f}" y1="28" x2="{tx:.1f}" y2="{bottom}" class="grid"/>')
        out.append(f'<text x="{tx:.1f}" y="{bottom + 16}" class="axis" text-anchor="middle">'
                   f"{t:.3g}</text>")  # fmt: skip
    for j, r in enumerate(rows):
        y = 30 + _ROW * j + _ROW / 2
        tip = (
            f"layout {r.index} (#{r.rank}): {r.labels}\nmean CTR {100 * r.mean:.2f}%, "
            f"{level:.0%} interval {100 * r.lower:.2f}% – {100 * r.upper:.2f}%, "
            f"P(best) {r.p_best:.3f}"
        )
        out += [
            f'<g class="row"><title>{html.escape(tip)}</title>',
            f'<rect x="0" y="{y - _ROW / 2:.1f}" width="{_WIDTH}" height="{_ROW}" class="hit"/>',
            f'<text x="{_LEFT - 8}" y="{y + 5:.1f}" text-anchor="end">#{r.rank} · layout '
            f"{r.index}</text>",
            f'<line x1="{x(r.lower):.1f}" y1="{y:.1f}" x2="{x(r.upper):.1f}" y2="{y:.1f}" '
            'class="ci"/>',
            f'<circle cx="{x(r.mean):.1f}" cy="{y:.1f}" r="5" class="dot"/>',
            f'<text x="{_WIDTH - 4}" y="{y + 5:.1f}" text-anchor="end">{r.p_best:.2f}</text>',
            "</g>",
        ]
    out.append("</svg>")
    return "\n".join(out)


def sequential_colour(share: float) -> str:
    """A white-to-blue background for a share in ``[0, 1]`` (CSS ``rgb``)."""
    s = float(np.clip(share, 0.0, 1.0)) ** 0.6  # small shares stay visible
    r, g, b = (255 - s * (255 - 33), 255 - s * (255 - 102), 255 - s * (255 - 172))
    return f"rgb({r:.0f},{g:.0f},{b:.0f})"


def diverging_colour(value: float, limit: float) -> str:
    """Blue (negative) through white to red (positive), on the shared scale ``limit``."""
    s = float(np.clip(value / limit, -1.0, 1.0)) if limit > 0 else 0.0
    end = (178, 24, 43) if s > 0 else (33, 102, 172)
    a = abs(s)
    r, g, b = (255 - a * (255 - c) for c in end)
    return f"rgb({r:.0f},{g:.0f},{b:.0f})"
