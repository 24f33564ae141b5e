"""Markdown tables for the experiment scripts (imported as ``_markdown``: a script's own
folder is first on ``sys.path`` when it runs, and tests/test_experiments.py adds it)."""

from __future__ import annotations

import pandas as pd


def to_markdown(df: pd.DataFrame, fmt: str) -> str:
    """A DataFrame (index included) as a Markdown table, without extra dependencies.

    Args:
        df: the table; a column MultiIndex is joined with spaces.
        fmt: format spec of float cells (e.g. ``".4f"``).

    Returns:
        The table, one line per row, without a trailing newline.
    """
    df = df.reset_index()
    df.columns = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in df.columns]
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        cells = [format(v, fmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
