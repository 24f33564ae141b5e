"""A recorded proposal, and the open round that ``Campaign.propose`` returns again."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from layoutopt.campaign.store import Store

__all__ = ["Proposal", "open_round"]


class Proposal(NamedTuple):
    """A recorded proposal (see :meth:`Campaign.propose`).

    Attributes:
        round: the round number it was recorded as (1 for the first proposal).
        layouts: the proposed layouts (``index``, label columns, the segment columns when
            proposed per segment, ``weight``).
        strategy: the strategy used.
        seed: the seed given.
        fit_id: the fit it was drawn from.
        refit: a note when the campaign was fitted first (new data since the last fit),
            else None.
        note: a note when no new round was opened (the open round returned as it was),
            else None.
        no_evidence: the fit's "no evidence yet" line
            (:func:`layoutopt.score.evidence.no_evidence`) when it could not tell layouts
            apart, in which case the proposal explores (uniform distinct layouts, see
            :func:`layoutopt.propose`); else None.
    """

    round: int
    layouts: pd.DataFrame
    strategy: str
    seed: int
    fit_id: int
    refit: str | None
    note: str | None = None
    no_evidence: str | None = None


def open_round(store: Store, cid: int, space_version: int) -> Proposal | None:
    """The latest proposal, with a note, when nothing answered it yet: no batch ingested
    since it was recorded and the same space version as its fit; else None."""
    props = store.proposals(cid)
    if not props or any(b["round"] == len(props) for b in store.batches(cid)):
        return None
    last = props[-1]
    fit = next(f for f in store.fits(cid) if f["id"] == last["fit_id"])
    if fit["space_version"] != space_version:
        return None
    note = (
        f"round {last['round']} is still open (nothing ingested since it was proposed); "
        "returned it unchanged: ingest its results first, or propose a new round anyway"
    )
    frame = pd.DataFrame(last["rows"])
    pick = fit["best"].get("no_evidence")
    return Proposal(
        last["round"], frame, last["strategy"], last["seed"], last["fit_id"], None, note, pick
    )
