"""Reading results into a campaign: files in chunks, content hashes, stored rows and back.

What :meth:`layoutopt.campaign.Campaign.ingest` and ``ingest_events`` need apart from the
store: a results file read chunk by chunk (:func:`read_chunks`) and validated into
:class:`~layoutopt.data.observations.Observations` with file-relative row numbers, the
content hash that makes an ingest idempotent, the observation rows as the store keeps them
(:func:`stored_rows`), and the stored rows read back as observations
(:func:`stored_observations`).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from layoutopt.data.observations import Observations
from layoutopt.data.readers import read_table, table_format
from layoutopt.model.space import LayoutSpace
from layoutopt.util.io import one_line

__all__ = [
    "CHUNK_ROWS",
    "IngestResult",
    "batch_record",
    "hash_file",
    "hash_frame",
    "hash_path",
    "ingest_result",
    "read_chunks",
    "stored_observations",
    "stored_rows",
]

#: Rows read at a time from a results file, so memory does not grow with the file.
CHUNK_ROWS = 200_000


class IngestResult(NamedTuple):
    """What one :meth:`Campaign.ingest` did.

    Attributes:
        source: the file name (or ``"frame"``).
        added: False when the same content had been ingested before (nothing was stored).
        batch_id: the stored batch (the earlier one when ``added`` is False).
        round: the round these rows answer (the number of proposals recorded before them).
        rows: rows in the input.
        layouts: distinct layouts after aggregation.
        impressions: total impressions.
        clicks: total clicks.
        content_hash: SHA-256 of the content.
    """

    source: str
    added: bool
    batch_id: int
    round: int
    rows: int
    layouts: int
    impressions: int
    clicks: int
    content_hash: str

    def message(self) -> str:
        """One line for people, saying what was added (or that nothing was)."""
        if not self.added:
            return f"{self.source}: already ingested (batch {self.batch_id}); nothing added"
        return (
            f"{self.source}: {self.rows:,} rows, {self.layouts:,} layouts, "
            f"{self.impressions:,} impressions, {self.clicks:,} clicks "
            f"(batch {self.batch_id}, answers round {self.round})"
        )


def hash_file(path: Path, extra: bytes = b"") -> str:
    """SHA-256 of a file's bytes followed by ``extra``, read in blocks of 1 MiB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(extra)
    return h.hexdigest()


def hash_path(path: Path, extra: bytes = b"") -> str:
    """SHA-256 of a file, or of a directory's Parquet files (names and contents) in order."""
    if path.is_file():
        return hash_file(path, extra)
    h = hashlib.sha256()
    for file in sorted(path.rglob("*.parquet")):
        h.update(str(file.relative_to(path)).encode() + b"\0")
        h.update(hash_file(file).encode())
    h.update(extra)
    return h.hexdigest()


def hash_frame(df: pd.DataFrame, extra: bytes = b"") -> str:
    """SHA-256 of a DataFrame's column names and cells (as text), followed by ``extra``."""
    h = hashlib.sha256(json.dumps([str(c) for c in df.columns]).encode())
    h.update(pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy().tobytes())
    h.update(extra)
    return h.hexdigest()


_ROW = re.compile(r"(: row )(\d+)(, column )")


def read_chunks(path: str | Path, chunk_rows: int = CHUNK_ROWS):
    """Yield a results file (CSV or Parquet) as DataFrames of at most ``chunk_rows`` rows.

    CSV cells are read as text, as :meth:`Observations.from_csv` does, so labels stay labels.

    Raises:
        ValueError: naming the file if it is missing, empty or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    kind = table_format(path)
    if kind == "csv":
        try:
            reader = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                index_col=False,
                chunksize=chunk_rows,
            )
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path}: empty file; expected a CSV header") from None
        with reader:
            while (chunk := _next_chunk(reader, path)) is not None:
                yield chunk
    elif kind == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises several types for a non-Parquet file
            raise ValueError(f"{path}: not a readable Parquet file ({err})") from None
        empty = True
        for batch in pf.iter_batches(batch_size=chunk_rows):
            empty = False
            yield batch.to_pandas()
        if empty:
            yield pf.schema_arrow.empty_table().to_pandas()
    else:
        read_table(path, None)  # raises the message for an unknown format


def _next_chunk(reader, path: Path) -> pd.DataFrame | None:
    """The next chunk of a CSV reader, or None at the end; malformed rows are errors."""
    try:
        with warnings.catch_warnings():
            # a row with more fields than the header would silently lose data
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return reader.get_chunk()
    except StopIteration:
        return None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
        raise ValueError(f"{path}: not a readable CSV file ({one_line(err)})") from None


def ingest_result(source: str, batch: dict[str, Any], added: bool) -> IngestResult:
    """The :class:`IngestResult` of a stored batch (as ``Store.batches`` returns it)."""
    keys = ("rows", "layouts", "impressions", "clicks")
    return IngestResult(
        source,
        added,
        int(batch["id"]),
        int(batch["round"]),
        *(int(batch[k]) for k in keys),
        batch["content_hash"],
    )


def batch_record(obs: Observations, source: str, digest: str, rows: int, version: int) -> dict:
    """The ``batches`` row of aggregated observations (see ``Store.add_batch``)."""
    return {
        "content_hash": digest,
        "source": source,
        "rows": rows,
        "layouts": obs.num_layouts,
        "impressions": int(obs.impressions.sum()),
        "clicks": int(obs.clicks.sum()),
        "space_version": version,
        "delay_counts": None if obs.delay_counts is None else json.dumps(obs.delay_counts.tolist()),
    }


def stored_rows(obs: Observations) -> list[dict[str, Any]]:
    """The ``observations`` rows of aggregated observations: codes as text, segment as JSON."""
    space = obs.space
    n = len(obs.codes)
    segs = [None] * n if obs.segments is None else obs.segments.tolist()
    ages = [None] * n if obs.age is None else obs.age.tolist()
    rounds = [None] * n if obs.round is None else obs.round.tolist()
    return [
        {
            "codes": ",".join(map(str, c)),
            "segment": None if g is None else json.dumps(space.segment_of(g)),
            "age": a,
            "round": r,
            "impressions": int(i),
            "clicks": int(k),
        }
        for c, g, a, r, i, k in zip(
            obs.codes.tolist(), segs, ages, rounds, obs.impressions, obs.clicks, strict=True
        )
    ]


def stored_observations(
    space: LayoutSpace,
    rows: list[tuple],
    histograms: list[list[int]],
    *,
    time: bool,
    source: str,
) -> Observations:
    """Stored observation rows (``Store.observation_rows``) as observations on ``space``.

    Args:
        space: the current space (stored codes stay valid: versions only append variants).
        rows: ``(codes, segment, age, round, impressions, clicks, batch round)`` tuples.
        histograms: the delay histograms of the event-log batches.
        time: keep ``round`` (the data's own, else the batch's), ``age`` (when every row has
            one) and the summed ``delay_counts``.
        source: name used in messages.

    Returns:
        The :class:`~layoutopt.data.observations.Observations` (rows summed per key).
    """
    codes = np.array([[int(c) for c in r[0].split(",")] for r in rows], dtype=np.int32)
    imp = np.array([r[4] for r in rows], dtype=np.int64)
    clk = np.array([r[5] for r in rows], dtype=np.int64)
    seg = None
    if space.segments:  # stored as JSON {context variable: value}
        seg = np.array([space.segment_code(json.loads(r[1])) for r in rows], dtype=np.int32)
    if not time:
        return Observations.from_codes(space, codes, imp, clk, source=source, segments=seg)
    rounds = np.array([r[6] if r[3] is None else r[3] for r in rows], dtype=np.int64)
    age = None
    if all(r[2] is not None for r in rows):
        age = np.array([r[2] for r in rows], dtype=np.float64)
    delay_counts = np.sum(histograms, axis=0, dtype=np.int64) if histograms else None
    return Observations.from_codes(
        space,
        codes,
        imp,
        clk,
        source=source,
        segments=seg,
        age=age,
        round=rounds,
        delay_counts=delay_counts,
    )
