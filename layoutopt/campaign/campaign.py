"""Campaigns that remember: ingest → fit → propose, round after round, in a durable store.

A :class:`Campaign` is a name in a store (:mod:`layoutopt.campaign.store`: a SQLite file or a
PostgreSQL database). It keeps every version of the layout space, every ingested batch of
results (content-hashed: the same content twice is stored once), every fit (the posterior as
NetCDF bytes) and every proposal (with its seed and strategy, numbered as the next round), so
a campaign can be resumed by anyone and audited later. Statistics come from the library's own
functions (:func:`layoutopt.fit`, :func:`layoutopt.best_layout`) and a proposal from the
campaign's policy, run through the driver's one loop body
(:func:`layoutopt.decide.driver.round_step`, see :mod:`layoutopt.campaign.rounds`); the
store only stores. Reading results in is :mod:`layoutopt.campaign.ingest`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from layoutopt.campaign.assignment_log import record_logged_rows, serving_settings
from layoutopt.campaign.columns import Columns
from layoutopt.campaign.deciding import Deciding
from layoutopt.campaign.fitting import Fitting
from layoutopt.campaign.history import Records
from layoutopt.campaign.ingest import (
    CHUNK_ROWS,
    IngestResult,
    batch_record,
    hash_file,
    hash_frame,
    hash_path,
    ingest_result,
    read_chunks,
    stored_rows,
)
from layoutopt.campaign.logged import served_frame, split_serving_columns
from layoutopt.campaign.metrics import Metrics
from layoutopt.campaign.proposal import Proposal, open_round
from layoutopt.campaign.proposal_options import ensure_options_table, options_writer
from layoutopt.campaign.report import campaign_report
from layoutopt.campaign.rounds import allocation_frame, campaign_policy, jsonable
from layoutopt.campaign.serving import Serving, check_holdout
from layoutopt.campaign.store import RoundConflict, Store, StoreBusyError
from layoutopt.campaign.versions import check_extension
from layoutopt.campaign.view import current_space, latest_best, store_observations
from layoutopt.data.events import parse_now
from layoutopt.data.observations import Observations, aggregate_file
from layoutopt.decide.driver import resume, round_keys, round_step
from layoutopt.decide.floor import with_floor
from layoutopt.decide.proposals import STRATEGIES
from layoutopt.infer.fitting import METHODS
from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.scoring import BestLayout
from layoutopt.util.limits import check_seed
from layoutopt.util.seeds import seed_of

__all__ = ["CHUNK_ROWS", "Campaign", "IngestResult", "Proposal", "read_chunks"]


#: Attempts of :meth:`Campaign.propose` when other processes keep opening rounds.
_PROPOSE_ATTEMPTS = 5


class Campaign(Fitting, Columns, Serving, Deciding, Metrics, Records):
    """A named campaign in a store; create with :meth:`create`, resume with :meth:`open`.

    Fitting it (:meth:`fit`, its prior, the recorded fits) is
    :class:`~layoutopt.campaign.fitting.Fitting`; serving its proposals (assignment, the
    allocation export, the holdout) is
    :class:`~layoutopt.campaign.serving.Serving`; its stopping rule and the verdict recorded
    with every fit (:meth:`decision`) is :class:`~layoutopt.campaign.deciding.Deciding`; its
    history tables are :class:`~layoutopt.campaign.history.Records`; its column mapping is
    :class:`~layoutopt.campaign.columns.Columns`.

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
    def create(
        cls,
        target: str | Path,
        space: LayoutSpace,
        name: str = "default",
        *,
        holdout: float = 0.0,
        control: dict[str, str] | None = None,
        objective=None,
        guardrails=None,
    ) -> Campaign:
        """Create a campaign (and the store, if new) at a file path or ``postgresql://`` URL.

        Args:
            target: a SQLite file path or a PostgreSQL URL.
            space: the layout space (version 1 of the campaign's space).
            name: the campaign's name, unique within the store.
            holdout: share of units served ``control`` (:meth:`set_holdout`).
            control: the control layout's labels (the status quo).
            objective, guardrails: what "best" means (:meth:`set_objective`).

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
        check_holdout(space, holdout, control)
        store = Store(target, create=True)
        try:
            cid = store.create_campaign(str(name), space.to_dict())
        except Exception:
            store.close()
            raise
        camp = cls(store, cid, str(name))
        if holdout or control is not None:
            camp.set_holdout(holdout, control)
        if objective is not None or guardrails:
            camp.set_objective(objective, guardrails)
        return camp

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
        return current_space(self.store, self._id)

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
        check_extension(old, space)
        return self.store.add_space(self._id, space.to_dict(), current["version"])

    # ------------------------------------------------------------------ data
    def ingest(
        self, data: str | Path | pd.DataFrame, *, chunk_rows: int = CHUNK_ROWS, columns=None
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
                with the file beyond the aggregated layouts, except for a file with
                ``propensity`` or ``holdout`` columns, which is read whole).
            columns: layoutopt's column names -> yours (``{"clicks": "click"}``), over
                the campaign's stored mapping (:meth:`set_columns`), name by name.

        Columns that :meth:`assign` writes may stay in the rows: ``propensity`` and
        ``holdout`` are kept per (layout, segment, round) for the holdout lift, the
        sample-ratio checks and off-policy evaluation (:mod:`layoutopt.campaign.logged`);
        ``unit`` and ``redrawn`` are ignored.

        Returns:
            :class:`IngestResult`.

        Raises:
            ValueError: for any bad row, column or value, or a missing file.
        """
        space, version = self.space, self.space_version
        columns = self._columns(columns)
        if isinstance(data, pd.DataFrame):
            source, digest = "frame", hash_frame(data)
        else:
            path = Path(data)
            if not path.is_file():
                raise ValueError(f"{path}: no such file")
            source, digest = str(path), hash_file(path)
        earlier = self._batch(digest)
        if earlier is not None:  # seen before: no need to read it again
            return ingest_result(source, earlier, False)
        frame = data if isinstance(data, pd.DataFrame) else served_frame(path, chunk_rows)
        if frame is None:
            kw = {"columns": columns, "metrics": self.metric_columns()}
            obs, rows = aggregate_file(path, space, chunk_rows=chunk_rows, **kw)
        else:
            frame, logged = split_serving_columns(frame, space, source, columns)
            kw = {"columns": columns, "metrics": self.metric_columns()}
            obs, rows = Observations.from_frame(frame, space, source, **kw), len(frame)
            if logged is not None:  # before the batch: read only once the batch exists
                record_logged_rows(self.store, self._id, digest, logged)
        return self._store_batch(obs, source, digest, int(rows), version)

    def ingest_events(
        self,
        events: str | Path | pd.DataFrame,
        *,
        now: Any,
        batch_size: int = 1 << 20,
        columns=None,
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
            columns: layoutopt's column names -> the log's (``{"served_at": "timestamp"}``),
                over the campaign's stored mapping (:meth:`set_columns`), name by name.

        Returns:
            :class:`IngestResult` (``rows`` counts impressions read).

        Raises:
            ValueError: naming the file, row, column and value of a bad event, or a missing
                file.
        """

        space, version = self.space, self.space_version
        stamp = str(parse_now(now)).encode()
        if isinstance(events, pd.DataFrame):
            source, digest = "events", hash_frame(events, stamp)
        else:
            path = Path(events)
            if not path.exists():
                raise ValueError(f"{path}: no such file or directory")
            source, digest = str(path), hash_path(path, stamp)
        earlier = self._batch(digest)
        if earlier is not None:
            return ingest_result(source, earlier, False)
        columns = self._columns(columns)
        obs = Observations.from_events(events, space, now, batch_size=batch_size, columns=columns)
        return self._store_batch(obs, source, digest, int(obs.impressions.sum()), version)

    def _store_batch(self, obs: Observations, source, digest, rows: int, version) -> IngestResult:
        """Store aggregated observations as one batch (one transaction)."""
        self._store_metric_rows(digest, obs)  # further metrics' counts, before the batch
        batch = batch_record(obs, source, digest, rows, version)
        # add_batch checks the hash again inside its transaction (another process may have
        # stored the same content meanwhile)
        _, added = self.store.add_batch(self._id, batch, stored_rows(obs))
        return ingest_result(source, self._batch(digest), added)

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
        return self._observations(time=time)

    def _observations(self, *, time: bool, first_round: bool = False) -> Observations:
        """:meth:`observations`; ``first_round``: only the rows of round-0 batches (what a
        policy's first fit saw)."""
        return store_observations(
            self.store, self._id, self.space, self.name, time=time, first_round=first_round
        )

    def propose(
        self,
        k: int = 8,
        strategy: str = "thompson",
        *,
        seed: int | None,
        method: str = "laplace",
        per_segment: bool = True,
        new_round: bool = False,
        min_share: float = 0.0,
        burn_in: int = 0,
    ) -> Proposal:
        """Propose the next layouts with the campaign's policy and record them as the next
        round.

        The policy is ``lo.policies.<strategy>(k, method=method, per_segment=per_segment)``
        with the prior of the latest fit (the one given to :meth:`fit`; else the campaign's
        meta-prior, :meth:`set_prior`; else the policies' default prior, its base rate set
        from the round-0 data) and the ``num_samples``, ``delay``, ``half_life`` and (for
        the same method) fit options of the latest fit. It is resumed from the store and
        stepped once by the driver's loop body (:func:`layoutopt.decide.driver.round_step`)
        on the store's observations, with the key of round ``rounds`` of a campaign of ``seed``
        (:func:`layoutopt.decide.driver.round_keys`): the proposal is the one a simulated
        campaign (:func:`layoutopt.decide.driver.run`) with the same data, policy and seed
        makes at that round. When data arrived (or the space changed) since the last fit,
        the step fits first and the fit is recorded (the returned :class:`Proposal` says so
        in ``refit``); otherwise it proposes from the latest fit. With an objective or
        guardrails (:meth:`set_objective`) it proposes on the value, never a failing layout.

        Concurrent proposers: the round is written only if no other process opened one
        while it was computed (:class:`~layoutopt.campaign.store.RoundConflict`); otherwise
        ``propose`` looks again, and finds that round open. The round and its options are
        one transaction.

        A round stays **open** until data answer it: when nothing was ingested since the
        latest proposal (and the space did not change), ``propose`` returns that round as
        recorded, saying so in ``note``, instead of opening another (``new_round=True``
        opens one anyway).

        Args:
            k: most layouts to propose (per segment with ``per_segment``).
            strategy: one of :data:`layoutopt.decide.proposals.STRATEGIES`.
            seed: the campaign seed of the round; None: the number of the round it opens
                (the CLI's default), resolved in the same transaction that numbers the
                round, so concurrent proposers each get their own round's seed.
            method: inference method for a fit made first.
            per_segment: on a space with segments, one proposal per segment (a batch per
                segment code, with the segment columns), as the simulated policies do;
                False: one proposal for the traffic mix.
            new_round: open a new round even when the latest one is still open.
            min_share: a traffic floor: every proposed layout gets at least this share of
                its (segment's) batch (:func:`layoutopt.decide.floor.with_floor`).
            burn_in: a variant with fewer impressions so far is kept in the proposal (a
                layout that contains it is added at the floor). Both are recorded with the
                round (:meth:`proposal_options`).

        Returns:
            :class:`Proposal`.

        Raises:
            ValueError: for an unknown strategy or method, or when no data were ingested.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; use one of {list(STRATEGIES)}")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {list(METHODS)}")
        for _ in range(_PROPOSE_ATTEMPTS):
            try:
                return self._propose(
                    k, strategy, seed, method, per_segment, new_round, min_share, burn_in
                )
            except RoundConflict:
                new_round = False  # another process opened a round: look again
        raise StoreBusyError(
            f"{self.store.target}: other processes kept opening rounds while this one "
            f"proposed ({_PROPOSE_ATTEMPTS} attempts); try again"
        )

    def _propose(self, k, strategy, seed, method, per_segment, new_round, min_share, burn_in):
        """One attempt of :meth:`propose` on the store as it is now; raises
        :class:`RoundConflict` (nothing written) when another writer opens a round first."""
        still_open = None if new_round else self._open_round()
        if still_open is not None:
            return still_open
        rounds = self.rounds
        seed = check_seed(rounds + 1 if seed is None else seed)
        self.store.check_writable("record a proposal")
        options = self._refit_options(method)
        timed = options["delay"] is not None or options["half_life"] is not None
        seen = (self.store.last_batch_id(self._id), self.space_version)
        obs = self.observations(time=timed)
        self._check_ages(obs, options["delay"])
        policy = campaign_policy(
            strategy,
            k,
            method=method,
            per_segment=per_segment,
            **{**options, "prior": options["prior"] or self.prior},
        )
        # on the objective when the settings name one; the floor applies to what it proposes
        policy = self._objective_policy(policy, k, strategy, options)
        policy = with_floor(policy, min_share=min_share, burn_in=burn_in)
        reason = self.stale()
        fitted = None if reason is not None else (obs, self.posterior())
        first = self._observations(time=timed, first_round=True)
        state = resume(policy, obs.space, seed=seed, first=first, rounds=rounds, fitted=fitted)
        key = round_keys(seed, rounds).step
        _, alloc, info = round_step(policy, state, obs, key)
        if info.posterior is None:
            raise ValueError(
                f"campaign {self.name!r}: the policy has nothing to fit yet (delay='auto' "
                "needs a click that has arrived); ingest more events, or fit with a delay"
            )
        note = None
        fit_id = self.store.fits(self._id)[-1]["id"] if fitted is not None else None
        if fitted is None:
            fit_id = self._record_fit(info.posterior, seen, method, seed, options, seed_of(key))
            note = f"fitted {method} first ({reason})"
        frame = allocation_frame(obs.space, alloc)
        held = serving_settings(self.store, self._id)  # the holdout this round is served with
        served = {"min_share": float(min_share), "burn_in": int(burn_in)}
        served |= {"holdout": held["holdout"], "control": held["control"]}
        ensure_options_table(self.store)
        # one transaction: the round, numbered as computed, and its options
        round_ = self.store.add_proposal(
            self._id,
            {
                "fit_id": fit_id,
                "seed": seed,
                "strategy": strategy,
                "k": int(k),
                "rows": jsonable(frame.to_dict("records")),
            },
            expected_round=rounds + 1,
            also=options_writer(self._id, served),
        )
        pick = next(f for f in self.store.fits(self._id) if f["id"] == fit_id)["best"]
        return Proposal(
            round_, frame, strategy, seed, fit_id, note, no_evidence=pick.get("no_evidence")
        )

    def _open_round(self) -> Proposal | None:
        """The latest proposal when nothing answered it yet (no batch since, same space)."""
        return open_round(self.store, self._id, self.space_version)

    def best(self) -> BestLayout:
        """The pick of the latest fit: highest posterior mean CTR, interval, P(best).

        Use :meth:`stale` to see whether data arrived since.

        Raises:
            ValueError: if the campaign has not been fitted.
        """
        return latest_best(self.store, self._id, self.name)

    def report(self, path: str | Path, *, evaluate=None) -> Path:
        """Write the campaign's HTML report (:func:`layoutopt.campaign.report.campaign_report`);
        ``evaluate`` names other allocations whose off-policy estimates it shows."""
        return campaign_report(self, path, evaluate=evaluate)
