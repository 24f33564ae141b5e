"""A column mapping kept in TOML: a ``[columns]`` table beside the layout space's tables.

A layout-space file may carry the mapping of layoutopt's column names to the log's, so the
command line (``fit -s``, ``campaign init -s``) reads it with the space and no ``--column``
has to be repeated::

    [components]
    item_1 = ["i0", "i1"]

    [columns]
    clicks = "click"
    served_at = "timestamp"

:func:`read_space_toml` returns the space and that mapping; the space's own tables are read
exactly as :meth:`~layoutopt.model.space.LayoutSpace.from_toml` reads them. The mapping's
names are checked against the table when a file is read (:mod:`layoutopt.data.columns`);
here only its shape is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from layoutopt.model.space import LayoutSpace
from layoutopt.model.space_toml import READER_TABLES, read_toml

__all__ = [
    "CAMPAIGN_TABLES",
    "COLUMNS_TABLE",
    "merge_columns",
    "read_campaign_toml",
    "read_space_toml",
    "split_columns",
]

#: The TOML table that holds the mapping ``{layoutopt name: your column}``.
COLUMNS_TABLE = "columns"
#: The campaign's settings that a space file may carry for ``campaign init``: what "best"
#: means (``[objective]`` weights, ``[guardrails.METRIC]``) and the ``[control]`` layout.
CAMPAIGN_TABLES = tuple(t for t in READER_TABLES if t != "columns")


def split_columns(data: Mapping[str, Any], source: str) -> tuple[dict, dict[str, str] | None]:
    """The space's tables and the ``[columns]`` mapping (None without one) of parsed TOML.

    Raises:
        ValueError: naming the file, for a ``columns`` that is not a table of strings.
    """
    tables = {k: v for k, v in data.items() if k != COLUMNS_TABLE}
    if COLUMNS_TABLE not in data:
        return tables, None
    columns = data[COLUMNS_TABLE]
    bad = (
        [f"{k} = {v!r}" for k, v in columns.items() if not isinstance(v, str)]
        if isinstance(columns, Mapping)
        else None
    )
    if bad is None or bad:
        raise ValueError(
            f"{source}: [columns] must map layoutopt's column names to yours, one "
            f'`name = "your_column"` line each (e.g. clicks = "click"); got '
            f"{bad if bad else type(columns).__name__}"
        )
    return tables, dict(columns)


def read_space_toml(path: str | Path) -> tuple[LayoutSpace, dict[str, str] | None]:
    """The layout space of a TOML file and its ``[columns]`` mapping (None without one).

    Args:
        path: the TOML file.

    Returns:
        ``(space, columns)``.

    Raises:
        ValueError: naming the file, as :meth:`LayoutSpace.from_toml` does, or for a
            malformed ``[columns]`` table.
    """
    space, columns, _ = read_campaign_toml(path)
    return space, columns


def read_campaign_toml(
    path: str | Path,
) -> tuple[LayoutSpace, dict[str, str] | None, dict[str, Any]]:
    """The layout space of a TOML file, its ``[columns]`` mapping and the campaign settings
    it carries (:data:`CAMPAIGN_TABLES`, as plain data; ``campaign init`` checks them)::

        [objective]            # a value per impression: weights of the metrics' rates
        clicks = 1
        signups = 30

        [guardrails.dismissals]
        max_relative_increase = 0.10
        probability = 0.9

        [control]              # the status quo the guardrails (and a holdout) compare with
        headline = "h1"
        image = "img1"

    Returns:
        ``(space, columns, settings)``: ``settings`` maps each table present to its content.

    Raises:
        ValueError: naming the file, as :meth:`LayoutSpace.from_toml` does, or for a
            malformed ``[columns]`` table or a setting that is not a table.
    """
    data = read_toml(Path(path))
    tables, columns = split_columns(data, str(path))
    settings = {k: tables.pop(k) for k in CAMPAIGN_TABLES if k in tables}
    for key, value in settings.items():
        if not isinstance(value, Mapping):
            raise ValueError(
                f"{path}: [{key}] must be a table (e.g. [objective] with `clicks = 1`), got "
                f"{type(value).__name__}"
            )
    return LayoutSpace.from_dict(tables, source=str(path)), columns, settings


def merge_columns(*mappings: Mapping[str, str] | None) -> dict[str, str] | None:
    """Mappings merged left to right (a later one wins per name); None when all are empty."""
    out: dict[str, str] = {}
    for mapping in mappings:
        out.update(mapping or {})
    return out or None
