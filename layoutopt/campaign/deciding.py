"""Can this campaign stop and ship? Its stopping rule and the verdict of every fit.

:class:`Deciding` is the part of :class:`~layoutopt.Campaign` that applies a
:class:`~layoutopt.decide.stopping.StopRule` to the latest fit
(:func:`~layoutopt.decide.stopping.decision`: the leader, its P(best), expected loss and
value remaining, stop or continue) and records the verdict. Two tables of its own (their own
:class:`sqlalchemy.MetaData`, created idempotently on first use, so stores written before
them need no migration):

- ``layoutopt_stop_rule``: one row per campaign, the rule as JSON (default
  :class:`StopRule` until one is set);
- ``layoutopt_decisions``: one row per (campaign, fit): the round, the rule it was judged
  by, the leader's index and labels, P(best), expected loss (absolute, relative),
  value remaining, the verdict and its reason. Re-deciding the same fit under the same rule
  returns the recorded row's figures again (the same posterior and draws give the same
  numbers); a new rule replaces the row.

Every write is one transaction.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import sqlalchemy as sa

from layoutopt.campaign.settings_tables import DECISIONS, STOP_RULE
from layoutopt.campaign.settings_tables import deciding_exists as _exists
from layoutopt.campaign.settings_tables import ensure_deciding as _ensure
from layoutopt.campaign.store import Store
from layoutopt.campaign.view import latest_decision, row_decision
from layoutopt.decide.stopping import Decision, StopRule, decision

__all__ = ["DECISIONS", "STOP_RULE", "Deciding", "decisions_frame"]


def decisions_frame(store: Store, cid: int) -> pd.DataFrame:
    """One row per recorded decision, oldest first: ``round, fit_id, leader_index, p_best,
    expected_loss, relative_expected_loss, value_remaining, verdict, reason``."""
    cols = [
        "round",
        "fit_id",
        "leader_index",
        "p_best",
        "expected_loss",
        "relative_expected_loss",
        "value_remaining",
        "verdict",
        "reason",
    ]
    if not _exists(store):
        return pd.DataFrame([], columns=cols)
    with store.engine.connect() as conn:
        q = sa.select(DECISIONS).where(DECISIONS.c.campaign_id == cid).order_by(DECISIONS.c.fit_id)
        rows = list(conn.execute(q))
    out = []
    for r in rows:
        d = row_decision(r)
        verdict = "stop" if d.stop else "continue"
        out.append(
            [int(r.round), int(r.fit_id), d.leader.index, d.p_best, d.expected_loss]
            + [d.relative_expected_loss, d.value_remaining, verdict, d.reason]
        )
    return pd.DataFrame(out, columns=cols)


class Deciding:
    """The stopping rule of a :class:`~layoutopt.Campaign` and its recorded verdicts.

    Needs the campaign's ``store``, ``_id``, ``name``, ``rounds``, ``scored_posterior()``,
    ``exclusions()`` and ``observations()`` (a mixin of :class:`~layoutopt.Campaign`).
    """

    store: Store
    _id: int
    name: str

    def stop_rule(self) -> StopRule:
        """The campaign's stopping rule (the default :class:`StopRule` until one is set)."""
        if not _exists(self.store):
            return StopRule()
        with self.store.engine.connect() as conn:
            q = sa.select(STOP_RULE.c.rule).where(STOP_RULE.c.campaign_id == self._id)
            text = conn.execute(q).scalar()
        return StopRule() if text is None else StopRule.from_json(text)

    def set_stop_rule(self, rule: StopRule | dict[str, Any]) -> StopRule:
        """Store the campaign's stopping rule (a :class:`StopRule` or its fields as a dict).

        Raises:
            ValueError: for unknown fields or values out of range (nothing is stored).
        """
        rule = rule if isinstance(rule, StopRule) else StopRule.from_json(dict(rule))
        _ensure(self.store)
        with self.store.transaction() as conn:
            conn.execute(sa.delete(STOP_RULE).where(STOP_RULE.c.campaign_id == self._id))
            conn.execute(sa.insert(STOP_RULE).values(campaign_id=self._id, rule=rule.to_json()))
        return rule

    def decision(self, rule: StopRule | None = None) -> Decision:
        """Stop and ship, or continue? The rule's verdict on the latest fit, recorded.

        The leader, P(best), expected loss and value remaining of the latest fit
        (:func:`~layoutopt.decide.stopping.decision`; the traffic mix on a space with
        segments), judged by ``rule`` (default: the campaign's :meth:`stop_rule`) with the
        campaign's rounds and impressions so far. Recorded per fit in the store and shown in
        the history (:meth:`decisions`). With an objective or guardrails
        (:meth:`set_objective`) it is the decision on the value over the layouts that pass
        them, and ``excluded`` says which layouts they exclude and why.

        Raises:
            ValueError: if the campaign has not been fitted.
        """
        rule = self.stop_rule() if rule is None else rule
        fits = self.store.fits(self._id)
        if not fits:
            raise ValueError(f"campaign {self.name!r}: not fitted yet; run `campaign fit`")
        fit_id = int(fits[-1]["id"])
        _ensure(self.store)
        with self.store.engine.connect() as conn:
            q = sa.select(DECISIONS).where(
                DECISIONS.c.campaign_id == self._id, DECISIONS.c.fit_id == fit_id
            )
            row = conn.execute(q).first()
        if row is not None and row.rule == rule.to_json():
            return row_decision(row)._replace(excluded=self.exclusions(fit_id))
        # the objective's value under the guardrails when the campaign sets them
        post = self.scored_posterior(fit_id)
        impressions = int(self.observations().impressions.sum())
        # the fit's own seed for the exact argmax of spaces above the enumeration limit
        seed = int(fits[-1].get("seed") or 0)
        d = decision(post, rule, rounds=self.rounds, impressions=impressions, seed=seed)
        self._record_decision(fit_id, rule, d)
        self._record_exclusions(fit_id, d.excluded)
        return d

    def latest_decision(self) -> Decision | None:
        """The recorded verdict on the latest fit, or None (reads the store only: no
        numerics, for ``campaign status``)."""
        return latest_decision(self.store, self._id)

    def _record_decision(self, fit_id: int, rule: StopRule, d: Decision) -> None:
        values = {
            "campaign_id": self._id,
            "fit_id": fit_id,
            "round": self.rounds,
            "rule": rule.to_json(),
            "leader": json.dumps(d.leader._asdict()),
            "p_best": d.p_best,
            "expected_loss": d.expected_loss,
            "relative_expected_loss": d.relative_expected_loss,
            "value_remaining": d.value_remaining,
            "expected_loss_se": d.expected_loss_se,
            "stop": bool(d.stop),
            "reason": d.reason,
        }
        with self.store.transaction() as conn:
            conn.execute(
                sa.delete(DECISIONS).where(
                    DECISIONS.c.campaign_id == self._id, DECISIONS.c.fit_id == fit_id
                )
            )
            conn.execute(sa.insert(DECISIONS).values(**values))

    def decisions(self) -> pd.DataFrame:
        """Every recorded verdict, one row per fit (:func:`decisions_frame`)."""
        return decisions_frame(self.store, self._id)
