"""Campaigns that remember: ingest → fit → propose, round after round, in a durable store.

A :class:`Campaign` is a name in a store (:mod:`layoutopt.campaign.store`: a SQLite file or a
PostgreSQL database). It keeps every version of the layout space, every ingested batch of
results (content-hashed: the same content twice is stored once), every fit (the posterior as
NetCDF bytes) and every proposal (with its seed and strategy, numbered as the next round), so
a campaign can be resumed by anyone and audited later. Statistics come from the library's own
functions (:func:`layoutopt.fit`, :func:`layoutopt.propose`, :func:`layoutopt.best_layout`);
the store only stores.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from layoutopt.campaign.report import campaign_report
from layoutopt.campaign.store import Store
from layoutopt.data.events import parse_now
from layoutopt.data.observations import Observations
from layoutopt.decide.proposals import STRATEGIES
from layoutopt.decide.proposals import propose as propose_layouts
from layoutopt.infer.fitting import METHODS
from layoutopt.infer.fitting import fit as fit_model
from layoutopt.infer.meta import MetaPrior
from layoutopt.infer.posterior import Posterior
from layoutopt.model.delay import Weibull, delay_spec, parse_delay
from layoutopt.model.space import LayoutSpace
from layoutopt.score.scoring import BestLayout, best_layout
from layoutopt.util.io import one_line
from layoutopt.util.limits import check_seed
from layoutopt.util.seeds import split_seed

__all__ = ["Campaign", "IngestResult", "Proposal", "read_chunks"]

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


class Proposal(NamedTuple):
    """A recorded proposal (see :meth:`Campaign.propose`).

    Attributes:
        round: the round number it was recorded as (1 for the first proposal).
        layouts: the proposed layouts (label columns, ``index``, ``weight``).
        strategy: the strategy used.
        seed: the seed given.
        fit_id: the fit it was drawn from.
        refit: a note when the campaign was fitted first (new data since the last fit),
            else None.
    """

    round: int
    layouts: pd.DataFrame
    strategy: str
    seed: int
    fit_id: int
    refit: str | None


def _hash_file(path: Path, extra: bytes = b"") -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(extra)
    return h.hexdigest()


def _hash_path(path: Path, extra: bytes = b"") -> str:
    """SHA-256 of a file, or of a directory's Parquet files (names and contents) in order."""
    if path.is_file():
        return _hash_file(path, extra)
    h = hashlib.sha256()
    for file in sorted(path.rglob("*.parquet")):
        h.update(str(file.relative_to(path)).encode() + b"\0")
        h.update(_hash_file(file).encode())
    h.update(extra)
    return h.hexdigest()


def _hash_frame(df: pd.DataFrame, extra: bytes = b"") -> str:
    h = hashlib.sha256(json.dumps([str(c) for c in df.columns]).encode())
    h.update(pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy().tobytes())
    h.update(extra)
    return h.hexdigest()


_ROW = re.compile(r"(: row )(\d+)(, column )")


def _shift_rows(err: ValueError, offset: int) -> ValueError:
    """The same message with table row numbers counted from the start of the file."""
    text = _ROW.sub(lambda m: f"{m[1]}{int(m[2]) + offset}{m[3]}", str(err), count=1)
    return ValueError(text)


def read_chunks(path: str | Path, chunk_rows: int = CHUNK_ROWS):
    """Yield a results file (CSV or Parquet) as DataFrames of at most ``chunk_rows`` rows.

    CSV cells are read as text, as :meth:`Observations.from_csv` does, so labels stay labels.

    Raises:
        ValueError: naming the file if it is missing, empty or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
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
    elif suffix in (".parquet", ".pq"):
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
        raise ValueError(
            f"{path}: unknown table format {suffix or '(no suffix)'!r}; use .csv or .parquet"
        )


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


def _read_observations(path: Path, space: LayoutSpace, chunk_rows: int) -> tuple[Observations, int]:
    """Validate and aggregate a file chunk by chunk; row numbers in errors count from the
    file's first data row."""
    parts, offset = [], 0
    for chunk in read_chunks(path, chunk_rows):
        if offset and len(chunk) == 0:
            break
        chunk.index = range(len(chunk))
        try:
            obs = Observations.from_frame(chunk, space, source=str(path))
        except ValueError as err:
            raise _shift_rows(err, offset) from None
        parts.append((obs.codes, obs.impressions, obs.clicks, obs.segments, obs.age, obs.round))
        offset += len(chunk)
    if not parts:
        raise ValueError(f"{path}: no data rows; at least one observed layout is needed")
    codes, imp, clk, seg, age, rnd = (
        None if p[0] is None else np.concatenate(p) for p in zip(*parts, strict=True)
    )
    obs = Observations.from_codes(
        space, codes, imp, clk, source=str(path), segments=seg, age=age, round=rnd
    )
    return obs, offset


def _check_extension(old: LayoutSpace, new: LayoutSpace) -> None:
    """New space versions may only append variants, so stored codes keep their meaning."""
    if tuple(new.components) != tuple(old.components):
        raise ValueError(
            f"update_space: components {list(new.components)} differ from the campaign's "
            f"{list(old.components)}; a campaign keeps its components (start a new campaign "
            "to change them)"
        )
    for comp, before, after in zip(old.components, old.variants, new.variants, strict=True):
        if tuple(after[: len(before)]) != tuple(before):
            raise ValueError(
                f"update_space: component {comp!r} lists {list(after)}, but its existing "
                f"variants {list(before)} must keep their positions (stored data refer to "
                "them by position); append new variants at the end"
            )


class Campaign:
    """A named campaign in a store; create with :meth:`create`, resume with :meth:`open`.

    Attributes:
        name: the campaign's name.
        store: the :class:`~layoutopt.campaign.store.Store`.
    """

    def __init__(self, store: Store, campaign_id: int, name: str) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self.store = store
        self.name = name
        self._id = campaign_id
        self._posteriors: dict[int, Posterior] = {}

    # ------------------------------------------------------------------ open / create
    @classmethod
    def create(cls, target: str | Path, space: LayoutSpace, name: str = "default") -> Campaign:
        """Create a campaign (and the store, if new) at a file path or ``postgresql://`` URL.

        Args:
            target: a SQLite file path or a PostgreSQL URL.
            space: the layout space (version 1 of the campaign's space).
            name: the campaign's name, unique within the store.

        Returns:
            The new :class:`Campaign`.

        Raises:
            ValueError: if the name is taken or the store cannot be used.

        Examples:
            >>> camp = Campaign.create("signup.db", space, name="prime-signup")  # doctest: +SKIP
        """
        if not isinstance(space, LayoutSpace):
            raise ValueError(f"space must be a LayoutSpace, got {type(space).__name__}")
        if not str(name).strip():
            raise ValueError("campaign name must not be empty")
        store = Store(target, create=True)
        try:
            cid = store.create_campaign(str(name), space.to_dict())
        except Exception:
            store.close()
            raise
        return cls(store, cid, str(name))

    @classmethod
    def open(cls, target: str | Path, name: str | None = None) -> Campaign:
        """Open a campaign; ``name`` is needed only when the store holds several.

        Raises:
            ValueError: if the store or the campaign does not exist, or the store was written
                by a newer layoutopt.
        """
        store = Store(target, create=False)
        try:
            cid, found = store.campaign_id(name)
        except Exception:
            store.close()
            raise
        return cls(store, cid, found)

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Campaign({self.name!r} in {self.store.target})"

    @property
    def campaign_id(self) -> int:
        """The campaign's id in the store (what :class:`~layoutopt.campaign.store.Store`
        methods take)."""
        return self._id

    @property
    def rounds(self) -> int:
        """Number of proposals recorded so far (the current round's number)."""
        return len(self.store.proposals(self._id))

    # ------------------------------------------------------------------ the space
    @property
    def space_version(self) -> int:
        """The number of the current space version (1 for the space given at creation)."""
        return self.store.spaces(self._id)[-1]["version"]

    @property
    def space(self) -> LayoutSpace:
        """The current layout space."""
        latest = self.store.spaces(self._id)[-1]
        return LayoutSpace.from_dict(latest["space"], source=f"{self.store.target} space")

    def update_space(self, space: LayoutSpace) -> int:
        """Record a new version of the space (new variants appended, rules changed, ...).

        Earlier data keep their meaning: every component must stay, in the same order, and
        every existing variant must keep its position; new variants go at the end.

        Args:
            space: the new space.

        Returns:
            The new version number.

        Raises:
            ValueError: explaining which component or variant would change meaning.
        """
        current = self.store.spaces(self._id)[-1]
        old = LayoutSpace.from_dict(current["space"], source=f"{self.store.target} space")
        _check_extension(old, space)
        return self.store.add_space(self._id, space.to_dict(), current["version"])

    # ------------------------------------------------------------------ data
    def ingest(
        self, data: str | Path | pd.DataFrame, *, chunk_rows: int = CHUNK_ROWS
    ) -> IngestResult:
        """Add a results file (CSV/Parquet) or DataFrame: all-or-nothing and idempotent.

        Every row is validated first (:meth:`Observations.from_frame`: a bad row anywhere
        stores nothing, and the message names file, row, column and value). The content is
        hashed; content seen before adds nothing. The rows are recorded as answers to the
        latest proposal (round 0 before any proposal: the initial design).

        Args:
            data: a ``.csv``/``.parquet`` path, or a DataFrame with the columns of
                :meth:`Observations.from_frame`.
            chunk_rows: rows of a file read and validated at a time (memory does not grow
                with the file beyond the aggregated layouts).

        Returns:
            :class:`IngestResult`.

        Raises:
            ValueError: for any bad row, column or value, or a missing file.
        """
        space, version = self.space, self.space_version
        if isinstance(data, pd.DataFrame):
            source, digest = "frame", _hash_frame(data)
        else:
            path = Path(data)
            if not path.is_file():
                raise ValueError(f"{path}: no such file")
            source, digest = str(path), _hash_file(path)
        earlier = self._batch(digest)
        if earlier is not None:  # seen before: no need to read it again
            return _ingest_result(source, earlier, False)
        if isinstance(data, pd.DataFrame):
            obs, rows = Observations.from_frame(data, space, source=source), len(data)
        else:
            obs, rows = _read_observations(path, space, chunk_rows)
        return self._store_batch(obs, source, digest, int(rows), version)

    def ingest_events(
        self, events: str | Path | pd.DataFrame, *, now: Any, batch_size: int = 1 << 20
    ) -> IngestResult:
        """Add an impression-level event log, aggregated to age cohorts: all-or-nothing and
        idempotent like :meth:`ingest`.

        The log is read by :meth:`Observations.from_events` (one row per impression: labels,
        segment columns, ``served_at``, ``clicked_at``, optionally ``round``; streamed, so a
        log of any length aggregates in bounded memory). The batch keeps each cohort's age
        at ``now`` and the histogram of observed click delays, so
        ``fit(delay="auto")`` can learn the delay. Each impression must be ingested once:
        rows of different batches add up (a later export of the same impressions with more
        clicks would count them twice). The content hash covers the log and ``now``.

        Args:
            events: a Parquet/CSV file, a directory of Parquet files, or a DataFrame.
            now: when the log was extracted (datetime or ISO text; naive times are UTC).
            batch_size: rows per record batch while reading.

        Returns:
            :class:`IngestResult` (``rows`` counts impressions read).

        Raises:
            ValueError: naming the file, row, column and value of a bad event, or a missing
                file.
        """

        space, version = self.space, self.space_version
        stamp = str(parse_now(now)).encode()
        if isinstance(events, pd.DataFrame):
            source, digest = "events", _hash_frame(events, stamp)
        else:
            path = Path(events)
            if not path.exists():
                raise ValueError(f"{path}: no such file or directory")
            source, digest = str(path), _hash_path(path, stamp)
        earlier = self._batch(digest)
        if earlier is not None:
            return _ingest_result(source, earlier, False)
        obs = Observations.from_events(events, space, now, batch_size=batch_size)
        return self._store_batch(obs, source, digest, int(obs.impressions.sum()), version)

    def _store_batch(self, obs: Observations, source, digest, rows: int, version) -> IngestResult:
        """Store aggregated observations as one batch (one transaction)."""
        space = obs.space
        batch = {
            "content_hash": digest,
            "source": source,
            "rows": rows,
            "layouts": obs.num_layouts,
            "impressions": int(obs.impressions.sum()),
            "clicks": int(obs.clicks.sum()),
            "space_version": version,
            "delay_counts": None
            if obs.delay_counts is None
            else json.dumps(obs.delay_counts.tolist()),
        }
        n = len(obs.codes)
        segs = [None] * n if obs.segments is None else obs.segments.tolist()
        ages = [None] * n if obs.age is None else obs.age.tolist()
        rounds = [None] * n if obs.round is None else obs.round.tolist()
        stored = [
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
        # add_batch checks the hash again inside its transaction (another process may have
        # stored the same content meanwhile)
        _, added = self.store.add_batch(self._id, batch, stored)
        return _ingest_result(source, self._batch(digest), added)

    def _batch(self, digest: str) -> dict[str, Any] | None:
        return next((b for b in self.store.batches(self._id) if b["content_hash"] == digest), None)

    def observations(self, *, time: bool = False) -> Observations:
        """Everything ingested so far, aggregated to one row per layout on the current space.

        Args:
            time: also keep the rows' time keys, for ``fit(delay=..., half_life=...)``:
                ``round`` (the data's own round column where a batch had one, else the
                round the batch answered), ``age`` (when every stored row has one: batches
                from :meth:`ingest_events` or with an ``age`` column) and ``delay_counts``
                (the summed delay histograms of event-log batches).

        Raises:
            ValueError: if nothing has been ingested yet.
        """
        rows = self.store.observation_rows(self._id)
        if not rows:
            raise ValueError(
                f"campaign {self.name!r}: no data ingested yet; ingest the results of the "
                "first design (`layoutopt design`) with `campaign ingest`"
            )
        codes = np.array([[int(c) for c in r[0].split(",")] for r in rows], dtype=np.int32)
        imp = np.array([r[4] for r in rows], dtype=np.int64)
        clk = np.array([r[5] for r in rows], dtype=np.int64)
        seg = None
        if self.space.segments:  # stored as JSON {context variable: value}
            seg = np.array(
                [self.space.segment_code(json.loads(r[1])) for r in rows], dtype=np.int32
            )
        if not time:
            return Observations.from_codes(
                self.space, codes, imp, clk, source=self.store.target, segments=seg
            )
        rounds = np.array([r[6] if r[3] is None else r[3] for r in rows], dtype=np.int64)
        age = None
        if all(r[2] is not None for r in rows):
            age = np.array([r[2] for r in rows], dtype=np.float64)
        histograms = [
            json.loads(b["delay_counts"])
            for b in self.store.batches(self._id)
            if b.get("delay_counts") is not None
        ]
        delay_counts = np.sum(histograms, axis=0, dtype=np.int64) if histograms else None
        return Observations.from_codes(
            self.space,
            codes,
            imp,
            clk,
            source=self.store.target,
            segments=seg,
            age=age,
            round=rounds,
            delay_counts=delay_counts,
        )

    # ------------------------------------------------------------------ fits
    @property
    def prior(self) -> MetaPrior | None:
        """The campaign's meta-prior (used by every :meth:`fit`), or None for the default."""
        stored = self.store.prior(self._id)
        return None if stored is None else MetaPrior.from_dict(json.loads(stored))

    def set_prior(self, prior: MetaPrior | None) -> None:
        """Keep ``prior`` in the store (one transaction) and use it for every later fit.

        Args:
            prior: a :class:`~layoutopt.MetaPrior` learned from past campaigns
                (``MetaPrior.learn``), or None to go back to the default prior.

        Raises:
            ValueError: if ``prior`` is neither a MetaPrior nor None.
        """
        if prior is not None and not isinstance(prior, MetaPrior):
            raise ValueError(f"a campaign keeps a MetaPrior (or None), got {type(prior).__name__}")
        stored = None if prior is None else json.dumps(prior.to_dict())
        self.store.set_prior(self._id, stored)

    def fit(
        self,
        method: str = "laplace",
        *,
        seed: int,
        num_samples: int = 1000,
        delay: Weibull | str | None = None,
        half_life: float | None = None,
    ) -> Posterior:
        """Fit the model to everything ingested and record the fit (posterior, diagnostics,
        the pick). The campaign's meta-prior (:meth:`set_prior`), when it has one, is the
        prior of the fit.

        Args:
            method: ``"laplace"``, ``"nuts"`` or ``"svi"``.
            seed: seed of the fit; split (:func:`layoutopt.util.seeds.split_seed`) into one seed
                for the fit and one for the pick's candidate search (huge spaces only).
            num_samples: posterior draws.
            delay: click-delay model (see :func:`layoutopt.fit`): needs an age on every
                stored row (:meth:`ingest_events`, or results with an ``age`` column);
                ``"auto"`` also needs the delay histogram of event-log batches.
            half_life: discount older rounds (see :func:`layoutopt.fit`); a row's round is
                its data's ``round`` column, else the round its batch answered.
                ``num_samples``, ``delay`` and ``half_life`` are recorded with the fit, and a
                fit made by :meth:`propose` reuses those of the latest fit.

        Returns:
            The :class:`Posterior`.

        Raises:
            ValueError: for an unknown method or when no data were ingested.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {list(METHODS)}")
        last = self.store.last_batch_id(self._id)
        version = self.space_version
        timed = delay is not None or half_life is not None
        obs = self.observations(time=timed)
        if delay is not None and obs.age is None:
            raise ValueError(
                f"campaign {self.name!r}: delay needs the age of every stored row; some "
                "batches have none (ingest event logs with `ingest_events`, or results with "
                "an 'age' column), or fit without delay"
            )
        fit_seed, pick_seed = split_seed(check_seed(seed), 2)
        post = fit_model(
            obs.space,
            obs,
            method=method,
            seed=fit_seed,
            num_samples=num_samples,
            prior=self.prior,
            delay=delay,
            half_life=half_life,
        )
        pick = best_layout(post, seed=pick_seed)
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "posterior.nc"
            post.save(file)
            blob = file.read_bytes()
        fit_id = self.store.add_fit(
            self._id,
            {
                "space_version": version,
                "last_batch_id": last,
                "method": method,
                "seed": int(seed),
                "options": {
                    "num_samples": int(num_samples),
                    "delay": delay_spec(delay),
                    "half_life": None if half_life is None else float(half_life),
                },
                "diagnostics": _jsonable(post.diagnostics),
                "best": _jsonable(pick._asdict()),
                "posterior": blob,
            },
        )
        self._posteriors[fit_id] = post
        return post

    def _refit_options(self) -> dict[str, Any]:
        """``num_samples``, ``delay`` and ``half_life`` of the latest fit (the defaults
        before the first fit)."""
        fits = self.store.fits(self._id)
        options = fits[-1]["options"] if fits else {}
        delay = options.get("delay")
        return {
            "num_samples": int(options.get("num_samples", 1000)),
            "delay": None if delay is None else parse_delay(delay),
            "half_life": options.get("half_life"),
        }

    def posterior(self, fit_id: int | None = None) -> Posterior:
        """The posterior of a recorded fit (default: the latest).

        Raises:
            ValueError: if the campaign has not been fitted.
        """
        if fit_id is None:
            fits = self.store.fits(self._id)
            if not fits:
                raise ValueError(f"campaign {self.name!r}: not fitted yet; run `campaign fit`")
            fit_id = fits[-1]["id"]
        if fit_id not in self._posteriors:
            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / "posterior.nc"
                file.write_bytes(self.store.fit_posterior(fit_id))
                self._posteriors[fit_id] = Posterior.load(file)
        return self._posteriors[fit_id]

    def stale(self) -> str | None:
        """Why the latest fit is out of date (new batches, a new space), or None."""
        fits = self.store.fits(self._id)
        if not fits:
            return "no fit yet"
        latest = fits[-1]
        new = [b for b in self.store.batches(self._id) if b["id"] > latest["last_batch_id"]]
        if new:
            return f"{len(new)} batch(es) ingested since the last fit"
        if latest["space_version"] != self.space_version:
            return "the space changed since the last fit"
        return None

    # ------------------------------------------------------------------ proposals
    def propose(
        self, k: int = 8, strategy: str = "thompson", *, seed: int, method: str = "laplace"
    ) -> Proposal:
        """Propose the next layouts and record them, with seed and strategy, as the next round.

        When data arrived (or the space changed) since the last fit, the campaign is fitted
        first with ``method`` (and the ``num_samples``, ``delay`` and ``half_life`` of the
        latest fit) and the returned :class:`Proposal` says so in ``refit``. The seed is
        split (:func:`layoutopt.util.seeds.split_seed`) into one seed for that fit and one for
        the proposal.

        Args:
            k: most layouts to propose.
            strategy: one of :data:`layoutopt.decide.proposals.STRATEGIES`.
            seed: seed of the (fit and) proposal.
            method: inference method for a fit made first.

        Returns:
            :class:`Proposal`.

        Raises:
            ValueError: for an unknown strategy, or when no data were ingested.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; use one of {list(STRATEGIES)}")
        fit_seed, propose_seed = split_seed(check_seed(seed), 2)
        reason = self.stale()
        note = None
        if reason is not None:
            self.fit(method, seed=fit_seed, **self._refit_options())
            note = f"fitted {method} first ({reason})"
        fit_id = self.store.fits(self._id)[-1]["id"]
        frame = propose_layouts(self.posterior(fit_id), k=k, strategy=strategy, seed=propose_seed)
        round_ = self.store.add_proposal(
            self._id,
            {
                "fit_id": fit_id,
                "seed": int(seed),
                "strategy": strategy,
                "k": int(k),
                "rows": _jsonable(frame.to_dict("records")),
            },
        )
        return Proposal(round_, frame, strategy, int(seed), fit_id, note)

    def best(self) -> BestLayout:
        """The pick of the latest fit: highest posterior mean CTR, interval, P(best).

        Use :meth:`stale` to see whether data arrived since.

        Raises:
            ValueError: if the campaign has not been fitted.
        """
        fits = self.store.fits(self._id)
        if not fits:
            raise ValueError(f"campaign {self.name!r}: not fitted yet; run `campaign fit`")
        return BestLayout(**fits[-1]["best"])

    # ------------------------------------------------------------------ history
    def history(self) -> pd.DataFrame:
        """One row per round: when, what was ingested, impressions, clicks, and the pick.

        Round 0 is the data before any proposal (the initial design); round r >= 1 starts
        with the r-th proposal. The pick is that of the fit the next proposal was drawn
        from, or of the latest fit for the current round when it saw the round's data.

        Returns:
            A DataFrame with columns ``round, proposed_at, strategy, seed, k, batches,
            sources, impressions, clicks, total_impressions, fit_id, method, pick_index,
            mean, lower, upper, p_best``.
        """
        batches = self.store.batches(self._id)
        proposals = self.store.proposals(self._id)
        fits = {f["id"]: f for f in self.store.fits(self._id)}
        latest_fit = max(fits) if fits else None
        rows, total = [], 0
        for r in range(len(proposals) + 1):
            prop = proposals[r - 1] if r >= 1 else None
            mine = [b for b in batches if b["round"] == r]
            imp = sum(int(b["impressions"]) for b in mine)
            total += imp
            fit_id = proposals[r]["fit_id"] if r < len(proposals) else latest_fit
            if fit_id is not None and r == len(proposals) and mine:
                if fits[fit_id]["last_batch_id"] < max(b["id"] for b in mine):
                    fit_id = None
            if r == len(proposals) and not mine and r > 0:
                fit_id = None
            pick = fits[fit_id]["best"] if fit_id is not None else {}
            rows.append(
                {
                    "round": r,
                    "proposed_at": prop["created_at"] if prop else None,
                    "strategy": prop["strategy"] if prop else "initial design",
                    "seed": prop["seed"] if prop else None,
                    "k": prop["k"] if prop else None,
                    "batches": len(mine),
                    "sources": ", ".join(Path(b["source"]).name for b in mine),
                    "impressions": imp,
                    "clicks": sum(int(b["clicks"]) for b in mine),
                    "total_impressions": total,
                    "fit_id": fit_id,
                    "method": fits[fit_id]["method"] if fit_id is not None else None,
                    "pick_index": pick.get("index"),
                    "mean": pick.get("mean", np.nan),
                    "lower": pick.get("lower", np.nan),
                    "upper": pick.get("upper", np.nan),
                    "p_best": pick.get("p_best", np.nan),
                }
            )
        return pd.DataFrame(rows)

    def proposals(self) -> pd.DataFrame:
        """Every proposed layout: ``round, strategy, seed`` plus the proposal's columns."""
        out = []
        for p in self.store.proposals(self._id):
            for row in p["rows"]:
                out.append(
                    {"round": p["round"], "strategy": p["strategy"], "seed": p["seed"]} | row
                )
        return pd.DataFrame(out)

    def report(self, path: str | Path) -> Path:
        """Write the campaign's HTML report (:func:`layoutopt.campaign.report.campaign_report`)."""
        return campaign_report(self, path)


def _ingest_result(source: str, batch: dict[str, Any], added: bool) -> IngestResult:
    keys = ("rows", "layouts", "impressions", "clicks")
    return IngestResult(
        source,
        added,
        int(batch["id"]),
        int(batch["round"]),
        *(int(batch[k]) for k in keys),
        batch["content_hash"],
    )


def _jsonable(obj: Any) -> Any:
    """Plain JSON values (numpy scalars and arrays become Python numbers and lists)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
