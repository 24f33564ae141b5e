"""A campaign's objective and guardrails, the metrics' counts and one fit per metric.

:class:`Metrics` is the part of :class:`~layoutopt.Campaign` that knows more than clicks.
The campaign's settings name an **objective** (a metric, or ``{metric: weight}``) and
**guardrails** relative to the campaign's control layout (the holdout's control,
:meth:`~layoutopt.campaign.serving.Serving.set_holdout`); from then on:

- ingest reads the count column of every metric they name besides ``clicks``
  (``Observations.from_frame(..., metrics=...)``) and keeps those counts per batch;
- every fit of the campaign also fits each further metric (the same method and draws, the
  default prior of that metric's counts; seeds split from the fit's) and keeps their
  posteriors;
- proposals (``camp.propose``) are made on the objective, never a layout that fails a
  guardrail (the campaign's policy wrapped by :func:`~layoutopt.decide.objective_policy.
  on_objective`);
- the pick, the decision and ``campaign status`` are those of the objective's value over
  the layouts that pass the guardrails (an :class:`~layoutopt.score.objective.
  ObjectivePosterior`), and the decision says which layouts the guardrails exclude and why.

Its tables (own :class:`sqlalchemy.MetaData`, created on first use, so older stores need no
migration): ``layoutopt_objective`` (one row per campaign: objective and guardrails as
JSON), ``layoutopt_metric_rows`` (per batch content hash: codes, segment, impressions,
metric, count; written before the batch itself, and read only for batches that exist, so a
failed ingest leaves nothing visible), ``layoutopt_metric_fits`` (per fit and metric: the
posterior's NetCDF bytes) and ``layoutopt_exclusions`` (per fit: what the guardrails
excluded, in words).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import sqlalchemy as sa

from layoutopt.campaign import view
from layoutopt.campaign.settings_tables import (
    EXCLUSIONS,
    METRIC_FITS,
    METRIC_ROWS,
    OBJECTIVE,
)
from layoutopt.campaign.settings_tables import ensure_metrics as _ensure
from layoutopt.campaign.settings_tables import metrics_exists as _exists
from layoutopt.campaign.store import Store
from layoutopt.data.observations import Observations
from layoutopt.decide.interface import Policy
from layoutopt.decide.objective_policy import on_objective
from layoutopt.infer.fitting import fit as fit_model
from layoutopt.infer.posterior import Posterior
from layoutopt.model.priors import PriorConfig
from layoutopt.score.objective import Guardrail, Objective, ObjectivePosterior
from layoutopt.util.seeds import seed_of, split_seed

__all__ = ["Metrics"]


class Metrics:
    """The objective, guardrails and further metrics of a :class:`~layoutopt.Campaign`.

    Needs the campaign's ``store``, ``_id``, ``name``, ``space``, ``holdout``,
    ``posterior()`` and ``_posteriors`` (a mixin of :class:`~layoutopt.Campaign`).
    """

    store: Store
    _id: int
    name: str

    # ---------------------------------------------------------------- settings
    def objective(self) -> Objective:
        """The campaign's objective (``"clicks"`` until one is set)."""
        return self._settings()[0]

    def guardrails(self) -> tuple[Guardrail, ...]:
        """The campaign's guardrails (none until set)."""
        return self._settings()[1]

    def settings_line(self) -> str:
        """``objective: ...; guardrails: ...`` in words, or ``""`` for plain clicks (shown by
        ``campaign status`` and the report)."""
        objective, guards = self.objective(), self.guardrails()
        return view.settings_line(objective, guards, self.holdout[1])

    def _settings(self) -> tuple[Objective, tuple[Guardrail, ...]]:
        return view.stored_settings(self.store, self._id)

    def set_objective(self, objective=None, guardrails: Any = ()) -> None:
        """Store the campaign's objective and guardrails (one transaction).

        Args:
            objective: a metric name or ``{metric: weight}`` (``None``: keep the current).
            guardrails: ``{metric: {"max_relative_increase": .., "probability": ..}}``;
                ``None`` removes them, ``()`` keeps the current. They are relative to the
                campaign's control layout (``Campaign.create(control=...)`` or
                :meth:`set_holdout`), which must be set.

        Later ingests read the count column of every metric named here besides
        ``clicks``; later fits fit each of them.

        Raises:
            ValueError: for a bad objective or guardrail (nothing is stored), or guardrails
                without a control layout.
        """
        old_objective, old_guards = self._settings()
        objective = old_objective if objective is None else Objective.of(objective)
        guards = old_guards if guardrails == () else Guardrail.of_dict(guardrails)
        if guards and self.holdout[1] is None:
            raise ValueError(
                f"campaign {self.name!r}: guardrails are relative to a control layout; set "
                "one first (Campaign.create(control=...) or set_holdout(0, control=...))"
            )
        values = {
            "campaign_id": self._id,
            "objective": json.dumps(objective.to_dict()),
            "guardrails": json.dumps(
                {
                    g.metric: {
                        "max_relative_increase": g.max_relative_increase,
                        "probability": g.probability,
                    }
                    for g in guards
                }
            ),
        }
        _ensure(self.store)
        with self.store.transaction() as conn:
            conn.execute(sa.delete(OBJECTIVE).where(OBJECTIVE.c.campaign_id == self._id))
            conn.execute(sa.insert(OBJECTIVE).values(**values))

    def metric_columns(self) -> tuple[str, ...]:
        """The count columns ingest reads besides ``clicks``: the settings' other metrics."""
        objective, guards = self._settings()
        names = list(objective.metrics) + [g.metric for g in guards]
        return tuple(dict.fromkeys(m for m in names if m != "clicks"))

    # ---------------------------------------------------------------- counts
    def _store_metric_rows(self, digest: str, obs: Observations) -> None:
        """Keep a batch's further counts (before the batch is stored; see module doc)."""
        if not obs.counts:
            return
        _ensure(self.store)
        space = obs.space
        segs = [None] * len(obs.codes) if obs.segments is None else obs.segments.tolist()
        rows = []
        for metric, counts in obs.counts.items():
            for c, g, n, k in zip(obs.codes.tolist(), segs, obs.impressions, counts, strict=True):
                rows.append(
                    {
                        "campaign_id": self._id,
                        "content_hash": digest,
                        "codes": ",".join(map(str, c)),
                        "segment": None if g is None else json.dumps(space.segment_of(g)),
                        "impressions": int(n),
                        "metric": metric,
                        "count": int(k),
                    }
                )
        with self.store.transaction() as conn:
            conn.execute(
                sa.delete(METRIC_ROWS).where(
                    METRIC_ROWS.c.campaign_id == self._id, METRIC_ROWS.c.content_hash == digest
                )
            )
            conn.execute(sa.insert(METRIC_ROWS), rows)

    def metric_observations(self, metric: str) -> Observations:
        """Everything ingested of one metric, as click data (its counts in ``clicks``).

        ``"clicks"`` is :meth:`observations`. Another metric counts the batches ingested
        while the settings named it.

        Raises:
            ValueError: when no batch carried the metric.
        """
        if metric == "clicks":
            return self.observations()
        space = self.space
        hashes = {b["content_hash"] for b in self.store.batches(self._id)}
        rows = []
        if _exists(self.store):
            with self.store.engine.connect() as conn:
                q = sa.select(METRIC_ROWS).where(
                    METRIC_ROWS.c.campaign_id == self._id, METRIC_ROWS.c.metric == metric
                )
                rows = [r for r in conn.execute(q) if r.content_hash in hashes]
        if not rows:
            raise ValueError(
                f"campaign {self.name!r}: no ingested batch counts {metric!r}; set the "
                "objective or guardrails first, then ingest results with that column"
            )
        codes = np.array([[int(c) for c in r.codes.split(",")] for r in rows], np.int32)
        seg = None
        if space.segments:
            seg = np.array([space.segment_code(json.loads(r.segment)) for r in rows], np.int32)
        return Observations.from_codes(
            space,
            codes,
            np.array([r.impressions for r in rows], np.int64),
            np.array([r.count for r in rows], np.int64),
            source=self.store.target,
            segments=seg,
        )

    # ---------------------------------------------------------------- fits
    def _fit_metrics(self, post: Posterior, method: str, settings: dict, seed: int) -> dict:
        """Fit every further metric like ``post`` (one seed each, split from ``seed``), with
        the fit's ``num_samples``, options and prior settings (``settings``, as recorded
        with the fit: ``PriorConfig(pairwise=False)`` makes every metric's model additive).
        A meta-prior was learned from clicks, so a further metric gets the default prior.

        A further metric's rows are stored per batch without ages or rounds, so ``delay``
        and ``half_life`` are the clicks' only; ``lo.fit_metrics`` on an event log gives
        each metric its own.

        The fits of the last ``post`` are kept, so the fit a proposal made and the fit that
        is recorded with it are the same (see :meth:`_objective_policy`).
        """
        last = self.__dict__.get("_metric_fits")
        if last is not None and last[0] is post:
            return last[1]
        names = self.metric_columns()
        seeds = split_seed(int(seed), len(names) + 1)[1:]
        prior = settings.get("prior")
        prior = prior if isinstance(prior, PriorConfig) else None
        options = settings.get("fit_options")
        out = {"clicks": post}
        for m, s in zip(names, seeds, strict=True):
            obs = self.metric_observations(m)
            out[m] = fit_model(
                obs.space,
                obs,
                method=method,
                seed=s,
                num_samples=int(settings["num_samples"]),
                prior=prior,
                options=options,
            )
        self.__dict__["_metric_fits"] = (post, out)
        return out

    def _record_metric_fits(self, fit_id: int, posts: dict) -> None:
        rows = [
            {
                "campaign_id": self._id,
                "fit_id": fit_id,
                "metric": m,
                "posterior": p.to_bytes(),
            }
            for m, p in posts.items()
            if m != "clicks"
        ]
        if not rows:
            return
        _ensure(self.store)
        with self.store.transaction() as conn:
            conn.execute(sa.insert(METRIC_FITS), rows)

    def _objective_of(self, posts: dict):
        """The posterior the pick and the decision score: the clicks posterior when the
        objective is clicks without guardrails, else the objective over the metrics."""
        objective, guards = self._settings()
        if objective == Objective.of("clicks") and not guards:
            return posts["clicks"]
        control = self.holdout[1] if guards else None
        return ObjectivePosterior.create(posts, objective, {g.metric: g for g in guards}, control)

    def _objective_policy(self, policy: Policy, k: int, strategy: str, settings: dict):
        """The campaign's policy, proposing on the objective when the settings name one
        (:func:`~layoutopt.decide.objective_policy.on_objective`); unchanged otherwise.
        ``settings`` are the refit's (``num_samples``, ``prior``, ``fit_options``)."""
        objective, guards = self._settings()
        if objective == Objective.of("clicks") and not guards:
            return policy

        def value_of(post: Posterior, key, observations):  # the store has the metrics
            fits = self.store.fits(self._id)
            if fits and self._posteriors.get(int(fits[-1]["id"])) is post:
                return self.scored_posterior()  # proposing from the latest recorded fit
            posts = self._fit_metrics(post, post.method, settings, seed_of(key))
            return self._objective_of(posts)

        return on_objective(policy, value_of, k=k, strategy=strategy)

    def scored_posterior(self, fit_id: int | None = None):
        """What a fit's pick and decision are computed on: the fit's posterior, or (with an
        objective or guardrails) the :class:`~layoutopt.score.objective.ObjectivePosterior`
        of its metrics.

        Raises:
            ValueError: if the campaign has not been fitted, or a metric the settings name
                was not fitted with it (settings changed since: fit again).
        """
        post = self.posterior(fit_id)
        if fit_id is None:
            fit_id = int(self.store.fits(self._id)[-1]["id"])
        posts = {"clicks": post}
        names = self.metric_columns()
        if names:
            stored = {}
            if _exists(self.store):
                with self.store.engine.connect() as conn:
                    q = sa.select(METRIC_FITS).where(
                        METRIC_FITS.c.campaign_id == self._id, METRIC_FITS.c.fit_id == fit_id
                    )
                    stored = {r.metric: r.posterior for r in conn.execute(q)}
            missing = [m for m in names if m not in stored]
            if missing:
                raise ValueError(
                    f"campaign {self.name!r}: fit {fit_id} has no fit of {missing} (the "
                    "objective or guardrails changed since); run `campaign fit` again"
                )
            posts.update({m: Posterior.from_bytes(stored[m]) for m in names})
        return self._objective_of(posts)

    def _record_exclusions(self, fit_id: int, note: str) -> None:
        if not note:
            return
        _ensure(self.store)
        with self.store.transaction() as conn:
            conn.execute(
                sa.delete(EXCLUSIONS).where(
                    EXCLUSIONS.c.campaign_id == self._id, EXCLUSIONS.c.fit_id == fit_id
                )
            )
            conn.execute(
                sa.insert(EXCLUSIONS).values(campaign_id=self._id, fit_id=fit_id, note=note)
            )

    def exclusions(self, fit_id: int | None = None) -> str:
        """What the guardrails excluded at a fit (default: the latest), in words; ``""``
        without guardrails (reads the store only)."""
        return view.exclusions(self.store, self._id, fit_id)
