"""Columns of an observations table: variant labels, segment values and counts, validated.

Each function turns one kind of column into codes or numbers and reports the first bad cell
as a ``ValueError`` that names the source, the 1-based row, the column, the value and what
would be valid. :mod:`layoutopt.data.readers` reads the tables these columns come from.
"""

from __future__ import annotations

import decimal
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from layoutopt.model import space_rules
from layoutopt.model.space import LayoutSpace
from layoutopt.util.io import QUOTED_PREFIXES
from layoutopt.util.limits import MAX_COUNT

__all__ = [
    "COUNT_COLUMNS",
    "ExtraColumnsWarning",
    "IGNORED_COLUMNS",
    "TIME_COLUMNS",
    "absent_code",
    "check_allowed",
    "column_codes",
    "label_codes",
    "layout_codes",
    "missing_mask",
    "parse_counts",
    "parse_time",
    "plain",
    "resolve_columns",
    "segment_codes",
    "warn_extra",
]

COUNT_COLUMNS = ("impressions", "clicks")
# Optional per-row time columns: hours since served (delayed clicks) and round (drift).
TIME_COLUMNS = ("age", "round")
# Written by design/propose next to the labels; ignored on input so those files round-trip.
IGNORED_COLUMNS = ("index", "weight")


class ExtraColumnsWarning(UserWarning):
    """A table or event log has columns that layoutopt does not read; they are ignored.

    Issued once per table, naming the columns, after the table was read without error.
    Silence it with ``warnings.simplefilter("ignore", ExtraColumnsWarning)``, or map a column
    that should be read with ``columns={"clicks": "click"}``.
    """


def resolve_columns(
    names: Sequence[str], columns: Mapping[str, str] | None, known: Sequence[str], source: str
) -> dict[str, str]:
    """Where each of layoutopt's columns is in a table: ``{layoutopt name: table's name}``.

    A known name present in the table is read under its own name unless ``columns`` maps it
    to another column; ``columns`` maps layoutopt's name to the user's
    (``{"clicks": "click", "served_at": "timestamp"}``).

    Args:
        names: the table's column names, as text.
        columns: the mapping, or None.
        known: layoutopt's names that this table may hold.
        source: name used at the start of error messages.

    Returns:
        The names of the known columns found (missing ones are left out for the caller to
        name).

    Raises:
        ValueError: for a mapping that is not ``{str: str}``, a key that is not one of
            ``known``, a value that is not a column of the table, two keys mapped to one
            column, or a key mapped away while the table also has a column of that name.
    """
    if columns is None:
        columns = {}
    if not isinstance(columns, Mapping):
        raise ValueError(
            f"columns must map layoutopt's column names to yours, e.g. "
            f"{{'clicks': 'click'}}; got {type(columns).__name__}"
        )
    for key, value in columns.items():
        if key not in known:
            raise ValueError(
                f"{source}: columns maps {key!r}, which is not a column layoutopt reads; "
                f"known names: {list(known)}"
            )
        if not isinstance(value, str) or value not in names:
            raise ValueError(
                f"{source}: columns maps {key!r} to {value!r}, but the table has no such "
                f"column; its columns: {list(names)}"
            )
    targets = list(columns.values())
    twice = sorted({v for v in targets if targets.count(v) > 1})
    if twice:
        raise ValueError(f"{source}: columns maps several names to column(s) {twice}")
    for key in columns:
        if key in names and key not in targets:
            raise ValueError(
                f"{source}: the table has a column {key!r} and columns maps {key!r} to "
                f"{columns[key]!r}; drop or rename one of them"
            )
    found = {k: k for k in known if k in names and k not in targets}
    return found | dict(columns)


def warn_extra(extras: Sequence[str], source: str, hint: str = "") -> None:
    """Issue the one :class:`ExtraColumnsWarning` line naming the ignored ``extras``."""
    if extras:
        warnings.warn(
            ExtraColumnsWarning(
                f"{source}: ignoring column(s) {list(extras)}: not a column layoutopt reads"
                f"{hint}; map one with columns={{layoutopt_name: your_name}} to read it"
            ),
            stacklevel=3,
        )


def layout_codes(df, space: LayoutSpace, source: str = "layouts") -> np.ndarray:
    """Variant codes of a table with one label column per component (others ignored).

    The one labels -> codes conversion of the package: every missing or unknown label and
    every forbidden layout is rejected with a message naming ``source``, the 1-based row,
    the column, the value and the valid variants.

    Args:
        df: a :class:`pandas.DataFrame`.
        space: the layout space.
        source: name used at the start of error messages (a file path when read from one).

    Returns:
        ``(N, K)`` int32 codes, in row order.

    Raises:
        ValueError: for a missing component column, a missing or unknown label, or a
            forbidden layout.
    """
    columns = [str(c) for c in df.columns]
    missing = [c for c in space.components if c not in columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {missing}; expected one label column per "
            f"component: {list(space.components)}"
        )
    codes = label_codes(df, dict(zip(columns, df.columns, strict=True)), space, source)
    check_allowed(codes, space, source)
    return codes


def label_codes(df, by_name: dict, space: LayoutSpace, source: str) -> np.ndarray:
    """``(N, K)`` codes of the label columns; rejects missing or unknown labels.

    Args:
        df: the table.
        by_name: ``{column name as text: the frame's column key}``.
        space: the layout space.
        source: name used at the start of error messages.
    """
    codes = np.empty((len(df), space.num_components), dtype=np.int32)
    for k, comp in enumerate(space.components):
        codes[:, k] = column_codes(
            df[by_name[comp]],
            space.label_codes[k],
            source,
            comp,
            ("label", "variant"),
            absent=absent_code(space, k),
        )
    return codes


def absent_code(space: LayoutSpace, k: int) -> int | None:
    """The code a missing cell of component ``k`` means: absent for an optional component
    (:data:`~layoutopt.model.space_optional.ABSENT`, code 0), None (an error) otherwise."""
    return 0 if k in space.optional else None


def segment_codes(df, by_name: dict, space: LayoutSpace, source: str) -> np.ndarray:
    """``(N,)`` int32 segment codes of the context-variable columns; rejects unknown values.

    Arguments as :func:`label_codes`.
    """
    out = np.zeros(len(df), dtype=np.int64)
    for name, values in space.segments:
        lookup = {v: i for i, v in enumerate(values)}
        codes = column_codes(df[by_name[name]], lookup, source, name, ("value", "segment value"))
        out = out * len(values) + codes
    return out.astype(np.int32)


def column_codes(
    column, lookup: dict, source: str, name: str, words, absent: int | None = None
) -> np.ndarray:
    """Codes of one label column through ``lookup`` (cells compared as text).

    Args:
        column: a :class:`pandas.Series`.
        lookup: ``{label: code}``.
        source: name used at the start of error messages.
        name: the column's name.
        words: what a cell is called when missing and when unknown, e.g.
            ``("label", "variant")``.
        absent: the code of a missing (null or blank) cell: an optional component's absent
            state; None makes a missing cell an error.

    Raises:
        ValueError: for the first missing or unknown cell, with its 1-based row, the
            column, the value and the valid ``lookup`` keys.
    """
    missing = missing_mask(column)
    valid = list(lookup)
    # A label like "=x" is exported as "'=x" (util.io.csv_safe): read both forms back.
    quoted = {"'" + k: v for k, v in lookup.items() if str(k).startswith(QUOTED_PREFIXES)}
    if quoted:
        lookup = quoted | dict(lookup)
    mapped = column.astype(str).map(lookup).to_numpy(dtype=float)
    # Blank text is missing unless it is a label (a label may be " "); null is always missing.
    missing = column.isna().to_numpy() | (missing & np.isnan(mapped))
    if absent is not None:
        mapped = np.where(missing, absent, mapped)
        missing = np.zeros_like(missing)
    bad = np.flatnonzero(missing | np.isnan(mapped))
    if bad.size:
        r = int(bad[0])
        what = f"missing {words[0]}" if missing[r] else f"unknown {words[1]}"
        if not missing[r]:
            what += f" {plain(column.iloc[r])!r}"
        hint = ""
        if missing[r] and words[1] == "variant":
            hint = f" (if {name!r} may be left out, declare it optional: optional=[{name!r}])"
        raise ValueError(
            f"{source}: row {r + 1}, column {name!r}: {what}; "
            f"valid {words[1].split()[-1]}s: {valid}{hint}"
        )
    return mapped.astype(np.int64)


def check_allowed(codes: np.ndarray, space: LayoutSpace, source: str, first_row: int = 1) -> None:
    """Refuse the first forbidden layout among ``(N, K)`` codes, naming its row and rule.

    Args:
        codes: the layouts' codes.
        space: the layout space.
        source: name used at the start of error messages.
        first_row: the number of the first row in messages (1 for tables, 0 for arrays).

    Raises:
        ValueError: for a layout forbidden by a user rule (retired variants are allowed).
    """
    # Data may hold retired variants: they were allowed when served and still inform the fit.
    allowed = space.allowed_mask(codes, include_retired=False)
    if not allowed.all():
        r = int(np.flatnonzero(~allowed)[0])
        rule = space.violated_rule(codes[r], include_retired=False)
        why = f"is forbidden by rule {rule}"
        if space_rules.repeated_pair(codes[r], space.distinct) is not None and not any(
            rule == {space.components[k]: space.variants[k][v] for k, v in user}
            for user in space_rules.user_rules(space.forbidden, space.retired)
        ):
            label = next(iter(rule.values()))
            why = f"shows {label!r} twice, in {list(rule)} (a distinct group: no item twice)"
        raise ValueError(f"{source}: row {r + first_row}: layout {space.decode(codes[r])} {why}")


def plain(value: Any) -> Any:
    """A cell as a plain Python value, so messages read ``2.5`` and not ``np.float64(2.5)``."""
    return value.item() if isinstance(value, np.generic) else value


def missing_mask(column) -> np.ndarray:
    """True where a cell is missing: NaN/None/NA, or text that is empty after stripping."""
    missing = column.isna().to_numpy()
    if column.dtype == object or str(column.dtype).startswith(("string", "str")):
        text = column.astype(str).str.strip().to_numpy()
        missing = missing | (text == "")
    return missing


def parse_counts(column, name: str, source: str) -> np.ndarray:
    """A count column as int64, rejecting missing, non-numeric, non-integer or negative.

    Raises:
        ValueError: for the first bad cell, naming ``source``, its 1-based row, the column
            ``name`` and the value.
    """

    missing = missing_mask(column)
    if pd.api.types.is_bool_dtype(column.dtype):
        numbers = np.full(len(column), np.nan)
    elif pd.api.types.is_numeric_dtype(column.dtype):
        numbers = column.to_numpy(dtype=float, na_value=np.nan)
    else:
        text = column.astype(str).str.strip().where(~missing, None)
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    fraction, too_big = _exact_limits(column, numbers)
    with np.errstate(invalid="ignore"):
        problems = [
            (missing, "missing value"),
            (~missing & np.isnan(numbers), "{!r} is not a number"),
            (~np.isfinite(numbers), "{!r} is not a finite number"),
            ((numbers != np.round(numbers)) | fraction, "{!r} is not a whole number"),
            (numbers < 0, "{!r} is negative"),
            (too_big, "{!r} is too large (limit 2**53 = " + f"{MAX_COUNT})"),
        ]
    for mask, what in problems:
        bad = np.flatnonzero(mask)
        if bad.size:
            r = int(bad[0])
            raise ValueError(
                f"{source}: row {r + 1}, column {name!r}: {what.format(plain(column.iloc[r]))}; "
                "counts must be non-negative whole numbers"
            )
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)
    exact = pd.to_numeric(column, errors="coerce") if column.dtype == object else None
    if exact is not None and pd.api.types.is_integer_dtype(exact.dtype):
        return exact.to_numpy(dtype=np.int64)  # text of integers: no trip through float64
    return numbers.astype(np.int64)


def _exact_limits(column, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of cells that are not whole and that pass ``MAX_COUNT``, decided exactly.

    A float64 cannot tell 2^53 from 2^53 + 1 (or from 2^53 + 0.5), so integer columns are
    compared as integers and text cells at or past 2^53 are parsed again as decimals.
    """
    fraction = np.zeros(len(numbers), bool)
    if pd.api.types.is_integer_dtype(column.dtype):
        return fraction, column.to_numpy() > MAX_COUNT
    with np.errstate(invalid="ignore"):
        too_big = numbers > MAX_COUNT
        edge = np.flatnonzero(numbers == MAX_COUNT)
    if column.dtype == object or str(column.dtype).startswith(("string", "str")):
        for r in edge:
            try:
                exact = decimal.Decimal(str(column.iloc[r]).strip())
            except decimal.InvalidOperation:
                continue
            too_big[r] = exact > MAX_COUNT
            fraction[r] = exact != exact.to_integral_value()
    return fraction, too_big


def parse_time(column, name: str, source: str) -> np.ndarray:
    """The ``age`` (hours, float) or ``round`` (whole number) column of a table.

    Raises:
        ValueError: for the first missing, negative or non-finite cell (or a fraction in
            ``round``), naming its 1-based row and the column.
    """
    missing = missing_mask(column)
    text = column if pd.api.types.is_numeric_dtype(column.dtype) else column.astype(str)
    numbers = pd.to_numeric(text, errors="coerce")
    numbers = np.asarray(numbers, dtype=float)
    whole = name == "round"
    with np.errstate(invalid="ignore"):
        bad = missing | ~np.isfinite(numbers) | (numbers < 0)
        if whole:
            bad |= numbers != np.round(numbers)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        what = "missing value" if missing[r] else f"{plain(column.iloc[r])!r} is not valid"
        valid = "a whole number >= 0" if whole else "a finite number of hours >= 0"
        raise ValueError(f"{source}: row {r + 1}, column {name!r}: {what}; need {valid}")
    return numbers.astype(np.int64) if whole else numbers
