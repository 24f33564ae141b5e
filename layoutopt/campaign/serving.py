"""Serving a campaign's proposals: the rounds' allocations, sticky assignment, the export.

:class:`Serving` is the part of :class:`~layoutopt.Campaign` that turns recorded proposals
into traffic (kept apart from ``campaign.py``, which ingests, fits and proposes). Each
recorded proposal is a round's **allocation**: its layouts with their weights, one list per
segment when proposed per segment. :meth:`Serving.assign` maps units to layouts with the
hash of :mod:`layoutopt.campaign.assign` (``docs/assignment.md``), the campaign's salt and
each unit's first round from the assignment log
(:mod:`layoutopt.campaign.assignment_log`); :meth:`Serving.allocation` is the same
allocation as a portable document for a site's own SDK.

Layouts are identified by their labels: a recorded proposal's labels are read on the
campaign's current space, so indices stay right after :meth:`Campaign.update_space`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from layoutopt.campaign.assign import (
    HASH_NAME,
    HASH_VERSION,
    assign_units,
)
from layoutopt.campaign.assignment_log import (
    first_rounds,
    logged_rows,
    serving_settings,
    set_serving,
)
from layoutopt.campaign.checks import SRM_ALPHA
from layoutopt.campaign.evaluate import Estimate
from layoutopt.campaign.logged import Lift, holdout_lift, logged_frame
from layoutopt.campaign.offpolicy import evaluate_allocation, read_allocation
from layoutopt.campaign.plans import RoundPlan, plan_key, round_plans
from layoutopt.campaign.ratios import RoundCheck
from layoutopt.campaign.store import Store
from layoutopt.campaign.view import sample_ratios
from layoutopt.model.space import LayoutSpace

__all__ = ["RoundPlan", "Serving", "check_holdout", "plan_document", "round_plans"]


def _plan_for(plans: dict, segment: dict | None, round_: int) -> RoundPlan:
    if None in plans:
        return plans[None]
    if segment is None:
        raise ValueError(
            f"round {round_} was proposed per segment; give each unit's segment values "
            "(segment_columns= / the units file's segment columns)"
        )
    found = plans.get(plan_key(segment))
    if found is None:
        raise ValueError(f"round {round_} has no allocation for segment {segment}")
    return found


def _layout_rows(space: LayoutSpace, plan: RoundPlan) -> list[dict[str, Any]]:
    codes = space.codes(plan.index)
    out = []
    for c, i, w, t in zip(codes, plan.index, plan.weights, plan.thresholds, strict=True):
        row = {comp: space.variants[k][int(c[k])] for k, comp in enumerate(space.components)}
        row.update(plan.segment or {})
        row.update(index=int(i), weight=float(w), threshold=int(t))
        out.append(row)
    return out


def plan_document(space: LayoutSpace, plans: dict[int, dict], settings: dict, name: str) -> dict:
    """The portable allocation document (``allocation.json``, ``docs/assignment.md``)."""
    rounds = sorted(plans)
    if not rounds:
        raise ValueError(f"campaign {name!r}: nothing proposed yet; run `campaign propose`")
    control = settings["control"]
    if control is not None:
        control = dict(control, index=int(space.index(control)))

    def listing(r):
        return [row for plan in plans[r].values() for row in _layout_rows(space, plan)]

    return {
        "campaign": name,
        "round": rounds[-1],
        "salt": settings["salt"],
        "hash": {"name": HASH_NAME, "version": HASH_VERSION},
        "components": list(space.components),
        "segments": list(space.segment_names),
        "holdout": settings["holdout"],
        "control": control,
        "layouts": listing(rounds[-1]),
        "history": [{"round": r, "layouts": listing(r)} for r in rounds[:-1]],
    }


def _unit_table(units, segment_columns, names: list[str]) -> pd.DataFrame:
    """Units (and their segment values) as a frame with ``unit`` and the segment columns."""
    if isinstance(units, pd.DataFrame):
        if "unit" not in units.columns:
            raise ValueError(f"units: no 'unit' column; columns: {list(units.columns)}")
        table = units.reset_index(drop=True).copy()
    else:
        table = pd.DataFrame({"unit": list(units)})
    if segment_columns is not None:
        extra = pd.DataFrame(segment_columns).reset_index(drop=True)
        if len(extra) != len(table):
            raise ValueError(
                f"segment_columns: {len(extra)} rows for {len(table)} units; give one per unit"
            )
        for col in extra.columns:
            table[col] = extra[col].to_numpy()
    if table["unit"].isna().any() or (table["unit"].astype(str).str.len() == 0).any():
        row = int(np.flatnonzero(table["unit"].isna() | (table["unit"].astype(str) == ""))[0])
        raise ValueError(f"units: row {row + 1}, column 'unit': empty unit id")
    table["unit"] = table["unit"].astype(str)
    missing = [n for n in names if n not in table.columns]
    if names and missing and len(missing) < len(names):
        raise ValueError(f"units: missing segment column(s) {missing}; segments: {names}")
    return table


def check_holdout(space: LayoutSpace, holdout: float, control) -> dict[str, str] | None:
    """Validate a holdout share and control layout; return the control's labels.

    Raises:
        ValueError: for a share outside ``[0, 1)``, a holdout without a control, or a
            control that is not an allowed layout of ``space``.
    """
    if not 0.0 <= float(holdout) < 1.0:
        raise ValueError(f"holdout must be a share in [0, 1), got {holdout!r}")
    if control is not None:
        missing = [c for c in space.components if c not in control]
        if missing:
            raise ValueError(f"control: no label for component(s) {missing}")
        control = {c: str(control[c]) for c in space.components}
        space.index(control)  # raises naming the component and the valid labels
    if holdout > 0 and control is None:
        raise ValueError("a holdout needs a control layout (control={component: label})")
    return control


class Serving:
    """Assignment and export of a campaign's rounds (mixed into :class:`~layoutopt.Campaign`).

    Uses the campaign's ``store``, ``name``, ``campaign_id`` and ``space``.
    """

    store: Store
    name: str
    campaign_id: int
    space: LayoutSpace

    @property
    def salt(self) -> str:
        """The campaign's assignment salt (created at first use, kept in the store)."""
        return serving_settings(self.store, self.campaign_id)["salt"]

    @property
    def holdout(self) -> tuple[float, dict[str, str] | None]:
        """``(holdout share, control layout labels or None)``."""
        s = serving_settings(self.store, self.campaign_id)
        return s["holdout"], s["control"]

    def set_holdout(self, holdout: float, control: Mapping[str, str] | None = None) -> None:
        """Reserve a share of units for a control layout, in every later assignment.

        Args:
            holdout: share of units in ``[0, 1)`` served ``control`` (0: no holdout).
            control: the control layout's labels (the status quo); needed when
                ``holdout > 0``, and kept when None is given later.

        Raises:
            ValueError: for a share outside ``[0, 1)``, a holdout without a control, or a
                control that is not an allowed layout of the space.
        """
        if control is None:
            control = self.holdout[1]
        control = check_holdout(self.space, holdout, control)
        set_serving(self.store, self.campaign_id, float(holdout), control)

    def round_plans(self) -> dict[int, dict]:
        """``{round: {segment key: RoundPlan}}`` of every recorded proposal."""
        return round_plans(self.space, self.store.proposals(self.campaign_id))

    def allocation(self) -> dict[str, Any]:
        """The current round's allocation as a portable document (``allocation.json``).

        Returns:
            ``round``, ``salt``, ``hash`` (``{name, version}`` of ``docs/assignment.md``),
            ``components``, ``segments``, ``holdout``, ``control``, ``layouts`` (one object
            per layout: labels, the segment values when proposed per segment, ``index``,
            ``weight`` and the hash ``threshold``) and ``history`` (every earlier round's
            ``layouts``, for sticky assignment).

        Raises:
            ValueError: when nothing has been proposed yet.
        """
        settings = serving_settings(self.store, self.campaign_id)
        return plan_document(self.space, self.round_plans(), settings, self.name)

    def assign(self, units, segment_columns=None) -> pd.DataFrame:
        """Assign units to the current round's layouts: sticky, reproducible, with propensities.

        A unit seen for the first time is logged with the current round as its first round
        (the store's assignment log, idempotent); its layout is the hash walk of
        ``docs/assignment.md`` over the rounds' allocations from its first round on, and its
        propensity the exact probability of that layout (the holdout included).

        Args:
            units: unit ids (a visitor, a session), or a DataFrame with a ``unit`` column
                (and, on a space with segments, one column per segment variable).
            segment_columns: on a space with segments, each unit's segment values (a
                mapping of column to values, or a DataFrame, one row per unit), when
                ``units`` does not carry them.

        Returns:
            One row per unit: ``unit``, one column per component (labels), ``index``,
            ``round``, ``propensity``, the segment columns (segment spaces), ``redrawn``
            (its layout left the allocation this round) and ``holdout``.

        Raises:
            ValueError: when nothing has been proposed, for an empty unit id, or for
                missing or unknown segment values.
        """
        space = self.space
        names = list(space.segment_names)
        table = _unit_table(units, segment_columns, names)
        plans = self.round_plans()
        if not plans:
            raise ValueError(
                f"campaign {self.name!r}: nothing proposed yet; run `campaign propose`"
            )
        current = max(plans)
        settings = serving_settings(self.store, self.campaign_id)
        has_segments = all(n in table.columns for n in names) and bool(names)
        segments = (
            table[names].astype(str).to_dict("records") if has_segments else [None] * len(table)
        )
        for seg in segments:
            if seg is not None:
                space.segment_code(seg)  # raises naming the variable and valid values
        firsts = first_rounds(self.store, self.campaign_id, table["unit"].tolist(), current)
        histories: dict[tuple, list] = {}
        unit_histories = []
        for unit, seg in zip(table["unit"], segments, strict=True):
            f = max(min(firsts[unit], current), min(plans))
            key = (f, plan_key(seg))
            if key not in histories:
                histories[key] = [
                    _plan_for(plans[t], seg, t).allocation() for t in range(f, current + 1)
                ]
            unit_histories.append(histories[key])
        control = settings["control"]
        result = assign_units(
            settings["salt"],
            table["unit"].tolist(),
            unit_histories,
            holdout=settings["holdout"],
            control=None if control is None else space.index(control),
        )
        out = pd.DataFrame({"unit": table["unit"].to_numpy()})
        labels = space.frame(space.codes(result.index))
        for comp in space.components:
            out[comp] = labels[comp].to_numpy()
        out["index"] = result.index
        out["round"] = current
        out["propensity"] = result.propensity
        if has_segments:
            for n in names:
                out[n] = table[n].astype(str).to_numpy()
        out["redrawn"] = result.redrawn
        out["holdout"] = result.holdout
        return out

    def logged(self) -> pd.DataFrame:
        """The ingested rows that carried a ``propensity`` or ``holdout`` column
        (:func:`layoutopt.campaign.logged.logged_frame`)."""
        return logged_frame(self.space, logged_rows(self.store, self.campaign_id))

    def lift(self, *, level: float = 0.9, num_draws: int = 20_000, seed: int = 0) -> Lift:
        """The lift of the campaign's traffic over the holdout, with a credible interval.

        Beta(1 + clicks, 1 + non-clicks) posteriors of the two pooled CTRs (ingested rows
        with a ``holdout`` column), the relative lift ``ctr_campaign / ctr_holdout - 1`` by
        Monte Carlo (:func:`layoutopt.campaign.logged.holdout_lift`).

        Args:
            level: the interval's level.
            num_draws: Monte Carlo draws.
            seed: seed of the draws (fixed by default, so the status line is reproducible).

        Raises:
            ValueError: when the ingested rows have no holdout or no campaign impressions.
        """
        return holdout_lift(self.logged(), level=level, num_draws=num_draws, seed=seed)

    def sample_ratios(self, alpha: float = SRM_ALPHA) -> list[RoundCheck]:
        """The sample-ratio check of every round that ingested rows name (their ``round``
        column), per segment when the round was proposed per segment
        (:func:`layoutopt.campaign.ratios.round_checks`).

        Args:
            alpha: p-values below it flag a mismatch.

        Returns:
            One :class:`~layoutopt.campaign.ratios.RoundCheck` per round (and segment), in
            round order.
        """
        return sample_ratios(self.store, self.campaign_id, self.space, alpha)

    def evaluate(
        self,
        allocation,
        *,
        level: float = 0.9,
        num_bootstrap: int = 1000,
        seed: int = 0,
    ) -> list[Estimate]:
        """What another allocation would have earned, from the logged propensities.

        IPS, self-normalised IPS and doubly robust (the latest fit's posterior mean CTR as
        the direct method; left out before the first fit), each with a bootstrap interval
        (:func:`layoutopt.campaign.offpolicy.evaluate_allocation`).

        Args:
            allocation: an allocation document (dict) or its JSON file.
            level: level of the intervals.
            num_bootstrap: bootstrap replicates.
            seed: seed of the bootstrap.

        Raises:
            ValueError: without ingested propensities, or for a bad allocation.
        """
        doc = read_allocation(allocation)
        post = self.posterior() if self.store.fits(self.campaign_id) else None
        return evaluate_allocation(
            self.space, self.logged(), doc, post, level=level, num_bootstrap=num_bootstrap,
            seed=seed,
        )  # fmt: skip
