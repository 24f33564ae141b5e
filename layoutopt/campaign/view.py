"""A campaign read from its store without the numerical stages (no JAX, numpyro or optax).

``campaign status``, ``campaign export`` and ``campaign best`` only print what the store
holds: the space, the ingested rows, the rounds, each fit's recorded pick and each recorded
verdict. :class:`CampaignView` reads them with SQLAlchemy, NumPy and pandas, so those
commands start in the time the interpreter takes to import them, not JAX's.

The functions below are the one definition of each read: :class:`~layoutopt.Campaign` calls
them too (``stale``, ``settings_line``, ``latest_decision``, ``exclusions``,
``sample_ratios``, ``observations``, ``best``), so a view and a campaign say the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from layoutopt.campaign.assignment_log import cohort_sizes, logged_rows, serving_settings
from layoutopt.campaign.checks import SRM_ALPHA
from layoutopt.campaign.history import Records
from layoutopt.campaign.ingest import stored_observations
from layoutopt.campaign.logged import Lift, holdout_lift, logged_frame
from layoutopt.campaign.plans import round_plans
from layoutopt.campaign.proposal_options import proposal_options
from layoutopt.campaign.ratios import RoundCheck, round_checks
from layoutopt.campaign.settings_tables import (
    DECISIONS,
    EXCLUSIONS,
    OBJECTIVE,
    deciding_exists,
    metrics_exists,
)
from layoutopt.campaign.store import Store
from layoutopt.data.observations import Observations
from layoutopt.decide.verdict import Decision
from layoutopt.model.space import LayoutSpace
from layoutopt.score.types import BestLayout, Guardrail, Objective

__all__ = [
    "CampaignView",
    "current_space",
    "exclusions",
    "latest_best",
    "latest_decision",
    "row_decision",
    "sample_ratios",
    "settings_line",
    "stale",
    "stored_settings",
    "store_observations",
]


def current_space(store: Store, cid: int) -> LayoutSpace:
    """The current (latest) version of campaign ``cid``'s layout space."""
    latest = store.spaces(cid)[-1]
    return LayoutSpace.from_dict(latest["space"], source=f"{store.target} space")


def store_observations(
    store: Store, cid: int, space: LayoutSpace, name: str, *, time: bool, first_round: bool
) -> Observations:
    """Everything campaign ``cid`` ingested, on ``space`` (``Campaign.observations``);
    ``first_round``: only the rows of round-0 batches.

    Raises:
        ValueError: if nothing has been ingested yet.
    """
    rows = store.observation_rows(cid)
    if first_round:
        rows = [r for r in rows if r[6] == 0]
    if not rows:
        raise ValueError(
            f"campaign {name!r}: no data ingested yet; ingest the results of the "
            "first design (`layoutopt design`) with `campaign ingest`"
        )
    histograms = [
        json.loads(b["delay_counts"])
        for b in store.batches(cid)
        if b.get("delay_counts") is not None and (not first_round or b["round"] == 0)
    ]
    return stored_observations(space, rows, histograms, time=time, source=store.target)


def stale(store: Store, cid: int) -> str | None:
    """Why the latest fit of campaign ``cid`` is out of date (new batches, a new space), or
    None."""
    fits = store.fits(cid)
    if not fits:
        return "no fit yet"
    latest = fits[-1]
    new = [b for b in store.batches(cid) if b["id"] > latest["last_batch_id"]]
    if new:
        return f"{len(new)} batch(es) ingested since the last fit"
    if latest["space_version"] != store.spaces(cid)[-1]["version"]:
        return "the space changed since the last fit"
    return None


def latest_best(store: Store, cid: int, name: str) -> BestLayout:
    """The pick recorded with the latest fit of campaign ``cid`` (named ``name``).

    Raises:
        ValueError: if the campaign has not been fitted.
    """
    fits = store.fits(cid)
    if not fits:
        raise ValueError(f"campaign {name!r}: not fitted yet; run `campaign fit`")
    return BestLayout(**fits[-1]["best"])


def stored_settings(store: Store, cid: int) -> tuple[Objective, tuple[Guardrail, ...]]:
    """Campaign ``cid``'s objective and guardrails (``"clicks"`` and none until set)."""
    if not metrics_exists(store):
        return Objective.of("clicks"), ()
    with store.engine.connect() as conn:
        q = sa.select(OBJECTIVE).where(OBJECTIVE.c.campaign_id == cid)
        row = conn.execute(q).first()
    if row is None:
        return Objective.of("clicks"), ()
    guards = json.loads(row.guardrails)
    return Objective.of(json.loads(row.objective)), Guardrail.of_dict(guards)


def settings_line(objective: Objective, guards: tuple[Guardrail, ...], control) -> str:
    """``objective: ...; guardrails: ... (control ...)`` in words, or ``""`` for plain
    clicks (shown by ``campaign status`` and the report)."""
    if objective.metrics == ("clicks",) and not guards:
        return ""
    line = f"objective: {objective.describe()} per impression"
    if guards:
        line += "; guardrails: " + ", ".join(g.describe() for g in guards)
        line += f" (control {control})"
    return line


def exclusions(store: Store, cid: int, fit_id: int | None = None) -> str:
    """What the guardrails excluded at a fit (default: the latest), in words; ``""``
    without guardrails."""
    fits = store.fits(cid)
    if not fits or not metrics_exists(store):
        return ""
    fit_id = int(fits[-1]["id"]) if fit_id is None else int(fit_id)
    with store.engine.connect() as conn:
        q = sa.select(EXCLUSIONS.c.note).where(
            EXCLUSIONS.c.campaign_id == cid, EXCLUSIONS.c.fit_id == fit_id
        )
        return conn.execute(q).scalar() or ""


def row_decision(row) -> Decision:
    """A row of the decisions table as a :class:`~layoutopt.decide.verdict.Decision`."""
    leader = json.loads(row.leader)
    return Decision(
        leader=BestLayout(**leader),
        p_best=float(row.p_best),
        expected_loss=float(row.expected_loss),
        relative_expected_loss=float(row.relative_expected_loss),
        value_remaining=float(row.value_remaining),
        stop=bool(row.stop),
        reason=str(row.reason),
        expected_loss_se=float(row.expected_loss_se),
    )


def latest_decision(store: Store, cid: int) -> Decision | None:
    """The recorded verdict on the latest fit of campaign ``cid`` (with what the guardrails
    excluded), or None."""
    fits = store.fits(cid)
    if not fits or not deciding_exists(store):
        return None
    fit_id = int(fits[-1]["id"])
    with store.engine.connect() as conn:
        q = sa.select(DECISIONS).where(DECISIONS.c.campaign_id == cid, DECISIONS.c.fit_id == fit_id)
        row = conn.execute(q).first()
    if row is None:
        return None
    return row_decision(row)._replace(excluded=exclusions(store, cid, fit_id))


def sample_ratios(
    store: Store, cid: int, space: LayoutSpace, alpha: float = SRM_ALPHA
) -> list[RoundCheck]:
    """The sample-ratio check of every round that ingested rows name, per segment when the
    round was proposed per segment (:func:`layoutopt.campaign.ratios.round_checks`)."""
    settings = serving_settings(store, cid)

    def index(control):
        return None if control is None else space.index(control)

    served_with = {
        r: (float(o["holdout"]), index(o.get("control")))
        for r, o in proposal_options(store, cid).items()
        if "holdout" in o
    }
    return round_checks(
        space,
        round_plans(space, store.proposals(cid)),
        store.observation_rows(cid),
        cohort_sizes(store, cid),
        settings["holdout"],
        index(settings["control"]),
        alpha,
        served_with,
    )


class CampaignView(Records):
    """A stored campaign, read only and without JAX: what ``campaign status``, ``export``
    and ``best`` print (its methods answer as :class:`~layoutopt.Campaign`'s of the same
    name).

    Attributes:
        name: the campaign's name.
        store: the :class:`~layoutopt.campaign.store.Store`.
    """

    def __init__(self, store: Store, campaign_id: int, name: str) -> None:
        """Use :meth:`open`."""
        self.store = store
        self.name = name
        self._id = campaign_id

    @classmethod
    def open(cls, target: str | Path, name: str | None = None) -> CampaignView:
        """Open a campaign as ``Campaign.open`` does (the same checks and messages).

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

    def __enter__(self) -> CampaignView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CampaignView({self.name!r} in {self.store.target})"

    @property
    def campaign_id(self) -> int:
        """The campaign's id in the store."""
        return self._id

    @property
    def space_version(self) -> int:
        """The number of the current space version."""
        return self.store.spaces(self._id)[-1]["version"]

    @property
    def space(self) -> LayoutSpace:
        """The current layout space."""
        return current_space(self.store, self._id)

    @property
    def holdout(self) -> tuple[float, dict[str, str] | None]:
        """``(holdout share, control layout labels or None)``."""
        s = serving_settings(self.store, self._id)
        return s["holdout"], s["control"]

    def observations(self, *, time: bool = False) -> Observations:
        """Everything ingested so far (:func:`store_observations`)."""
        return store_observations(
            self.store, self._id, self.space, self.name, time=time, first_round=False
        )

    def stale(self) -> str | None:
        """Why the latest fit is out of date, or None (:func:`stale`)."""
        return stale(self.store, self._id)

    def best(self) -> BestLayout:
        """The pick of the latest fit (:func:`latest_best`)."""
        return latest_best(self.store, self._id, self.name)

    def latest_decision(self) -> Decision | None:
        """The recorded verdict on the latest fit, or None (:func:`latest_decision`)."""
        return latest_decision(self.store, self._id)

    def exclusions(self, fit_id: int | None = None) -> str:
        """What the guardrails excluded at a fit (:func:`exclusions`)."""
        return exclusions(self.store, self._id, fit_id)

    def settings_line(self) -> str:
        """The objective and guardrails in words, or ``""`` (:func:`settings_line`)."""
        objective, guards = stored_settings(self.store, self._id)
        return settings_line(objective, guards, self.holdout[1])

    def sample_ratios(self, alpha: float = SRM_ALPHA) -> list[RoundCheck]:
        """The sample-ratio check of every round (:func:`sample_ratios`)."""
        return sample_ratios(self.store, self._id, self.space, alpha)

    def logged(self):
        """The ingested rows that carried a ``propensity`` or ``holdout`` column
        (:func:`layoutopt.campaign.logged.logged_frame`)."""
        return logged_frame(self.space, logged_rows(self.store, self._id))

    def lift(self, *, level: float = 0.9, num_draws: int = 20_000, seed: int = 0) -> Lift:
        """The lift of the campaign's traffic over the holdout
        (:func:`layoutopt.campaign.logged.holdout_lift`)."""
        return holdout_lift(self.logged(), level=level, num_draws=num_draws, seed=seed)
