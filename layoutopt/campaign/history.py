"""A campaign's history as tables: one row per round, and every proposed layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from layoutopt.campaign.proposal_options import proposal_options
from layoutopt.campaign.store import Store

__all__ = ["Records", "history_frame", "proposals_frame"]


def history_frame(store: Store, cid: int) -> pd.DataFrame:
    """One row per round of campaign ``cid``: when, what was ingested, and the pick.

    Round 0 is the data before any proposal (the initial design); round r >= 1 starts
    with the r-th proposal. The pick is that of the fit the next proposal was drawn
    from, or of the latest fit for the current round when it saw the round's data.

    Returns:
        A DataFrame with columns ``round, proposed_at, strategy, seed, k, batches,
        sources, impressions, clicks, total_impressions, fit_id, method, pick_index,
        mean, lower, upper, p_best``.
    """
    batches = store.batches(cid)
    proposals = store.proposals(cid)
    fits = {f["id"]: f for f in store.fits(cid)}
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


def proposals_frame(store: Store, cid: int) -> pd.DataFrame:
    """Every proposed layout of campaign ``cid``: ``round, strategy, seed`` plus the
    proposal's columns."""
    out = []
    for p in store.proposals(cid):
        for row in p["rows"]:
            out.append({"round": p["round"], "strategy": p["strategy"], "seed": p["seed"]} | row)
    return pd.DataFrame(out)


class Records:
    """The history tables of a :class:`~layoutopt.Campaign` (a mixin: needs ``store`` and
    ``_id``)."""

    store: Store
    _id: int

    def history(self) -> pd.DataFrame:
        """One row per round (:func:`history_frame`)."""
        return history_frame(self.store, self._id)

    def proposals(self) -> pd.DataFrame:
        """Every proposed layout: ``round, strategy, seed`` plus the proposal's columns."""
        return proposals_frame(self.store, self._id)

    def proposal_options(self) -> dict[int, dict]:
        """``{round: {"min_share": ..., "burn_in": ...}}`` of the rounds proposed with a
        traffic floor or burn-in (the other rounds had neither)."""
        return proposal_options(self.store, self._id)

    def latest_fit(self) -> dict | None:
        """The latest recorded fit, without its posterior: ``method``, ``seed``,
        ``options`` (``num_samples``, ``delay``, ``half_life``, as asked for: a number,
        ``"auto"`` or None) and ``diagnostics`` (with ``half_life="auto"``, the chosen
        ``half_life`` and ``change_round`` and the ``half_life_auto`` line); None before
        the first fit."""
        fits = self.store.fits(self._id)
        if not fits:
            return None
        last = fits[-1]
        return {k: last[k] for k in ("id", "method", "seed", "options", "diagnostics")}
