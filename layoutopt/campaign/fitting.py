"""Fitting a campaign: its prior and fit options, the recorded fits, and whether they are stale.

:class:`Fitting` is the part of :class:`~layoutopt.Campaign` that fits the model to
everything ingested (:func:`layoutopt.fit`, with the same ``prior=``, ``options=``,
``delay=`` and ``half_life=``) and records the fit: its posterior, diagnostics, the pick,
and the settings it was made with, so a fit made later by ``propose`` reuses them. A prior
given to :meth:`Fitting.fit` is recorded with that fit (as JSON: a
:class:`~layoutopt.PriorConfig`'s fields or a meta-prior's groups); without one the fit uses
the campaign's meta-prior (:meth:`Fitting.set_prior`) or the default prior.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from layoutopt.campaign import view
from layoutopt.campaign.rounds import jsonable
from layoutopt.data.observations import Observations
from layoutopt.infer.data import check_half_life
from layoutopt.infer.fitting import METHODS
from layoutopt.infer.fitting import fit as fit_model
from layoutopt.infer.meta import MetaPrior
from layoutopt.infer.options import OPTIONS, LaplaceOptions, NutsOptions, SviOptions
from layoutopt.infer.posterior import Posterior
from layoutopt.model.delay import Weibull, delay_spec, parse_delay
from layoutopt.model.priors import PriorConfig
from layoutopt.score.scoring import best_layout
from layoutopt.util.limits import check_seed
from layoutopt.util.seeds import split_seed

__all__ = ["Fitting", "options_record", "prior_record", "read_options", "read_prior"]

FitOptions = LaplaceOptions | NutsOptions | SviOptions


def prior_record(prior: PriorConfig | MetaPrior | None) -> dict | None:
    """A prior as plain JSON data (``{"PriorConfig": fields}`` or ``{"MetaPrior": groups}``)."""
    if prior is None:
        return None
    if isinstance(prior, MetaPrior):
        return {"MetaPrior": prior.to_dict()}
    return {"PriorConfig": dataclasses.asdict(prior)}


def read_prior(record: dict | None) -> PriorConfig | MetaPrior | None:
    """The prior of :func:`prior_record`'s data."""
    if not record:
        return None
    if "MetaPrior" in record:
        return MetaPrior.from_dict(record["MetaPrior"])
    return PriorConfig(**record["PriorConfig"])


def options_record(options: FitOptions | None) -> dict | None:
    """A fit method's options as plain JSON data (``{"type": name, "fields": {...}}``)."""
    if options is None:
        return None
    return {"type": type(options).__name__, "fields": dataclasses.asdict(options)}


def read_options(record: dict | None, method: str) -> FitOptions | None:
    """The options of :func:`options_record`'s data when they are ``method``'s type (a
    proposal that refits with another method takes that method's defaults), else None."""
    kind = OPTIONS[method]
    if not record or record.get("type") != kind.__name__:
        return None
    return kind(**record["fields"])


def _check_prior(prior) -> None:
    if prior is not None and not isinstance(prior, PriorConfig | MetaPrior):
        raise ValueError(
            f"prior must be a PriorConfig, a MetaPrior or None, got {type(prior).__name__}"
        )


class Fitting:
    """Fits of a campaign (mixed into :class:`~layoutopt.Campaign`)."""

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
        prior: PriorConfig | MetaPrior | None = None,
        options: FitOptions | None = None,
        delay: Weibull | str | None = None,
        half_life: float | str | None = None,
    ) -> Posterior:
        """Fit the model to everything ingested and record the fit (posterior, diagnostics,
        the pick), as :func:`layoutopt.fit` does. ``prior`` (default: the campaign's
        meta-prior, :meth:`set_prior`, when it has one; else ``PriorConfig()``) is the prior
        of the fit.

        Args:
            method: ``"laplace"``, ``"nuts"`` or ``"svi"``.
            seed: seed of the fit; split (:func:`layoutopt.util.seeds.split_seed`) into one seed
                for the fit and one for the pick's candidate search (huge spaces only).
            num_samples: posterior draws.
            prior: a :class:`~layoutopt.PriorConfig` (e.g. ``PriorConfig(pairwise=False)``:
                the additive model) or a :class:`~layoutopt.MetaPrior`, as in
                :func:`layoutopt.fit`; None: the campaign's meta-prior or the default.
            options: the method's options (:class:`~layoutopt.LaplaceOptions`,
                :class:`~layoutopt.NutsOptions`, :class:`~layoutopt.SviOptions`), as in
                :func:`layoutopt.fit`.
            delay: click-delay model (see :func:`layoutopt.fit`): needs an age on every
                stored row (:meth:`ingest_events`, or results with an ``age`` column);
                ``"auto"`` also needs the delay histogram of event-log batches.
            half_life: discount older rounds, a half-life or ``"auto"`` (the discount the
                rounds support, :func:`layoutopt.fit`); a row's round is
                its data's ``round`` column, else the round its batch answered.
                ``num_samples``, ``prior``, ``options``, ``delay`` and ``half_life`` are
                recorded with the fit, and a fit made by :meth:`propose` reuses those of the
                latest fit (``options`` when it refits with the same method).

        Returns:
            The :class:`Posterior`.

        Raises:
            ValueError: for an unknown method, a prior or options of the wrong type, or when
                no data were ingested.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {list(METHODS)}")
        _check_prior(prior)
        self.store.check_writable("record a fit")
        last = self.store.last_batch_id(self._id)
        version = self.space_version
        timed = delay is not None or half_life is not None
        obs = self.observations(time=timed)
        self._check_ages(obs, delay)
        fit_seed, pick_seed = split_seed(check_seed(seed), 2)
        post = fit_model(
            obs.space,
            obs,
            method=method,
            seed=fit_seed,
            num_samples=num_samples,
            prior=self.prior if prior is None else prior,
            options=options,
            delay=delay,
            half_life=half_life,
        )
        settings = {
            "num_samples": num_samples,
            "delay": delay,
            "half_life": half_life,
            "prior": prior,
            "fit_options": options,
        }
        self._record_fit(post, (last, version), method, seed, settings, pick_seed)
        return post

    def _record_fit(self, post: Posterior, seen, method, seed, options, pick_seed) -> int:
        """Store a fit (posterior bytes, diagnostics, the pick); ``seen`` is the fit's
        ``(last batch id, space version)``."""
        posts = self._fit_metrics(post, method, options, pick_seed)
        pick = best_layout(self._objective_of(posts), seed=pick_seed)
        blob = post.to_bytes()
        half_life = options["half_life"]
        fit_id = self.store.add_fit(
            self._id,
            {
                "space_version": seen[1],
                "last_batch_id": seen[0],
                "method": method,
                "seed": int(seed),
                "options": {
                    "num_samples": int(options["num_samples"]),
                    "delay": delay_spec(options["delay"]),
                    "half_life": check_half_life(half_life),
                    "prior": prior_record(options.get("prior")),
                    "fit_options": options_record(options.get("fit_options")),
                },
                "diagnostics": jsonable(post.diagnostics),
                "best": jsonable(pick._asdict()),
                "posterior": blob,
            },
        )
        self._posteriors[fit_id] = post
        self._record_metric_fits(fit_id, posts)
        self.decision()  # the stopping rule's verdict on every fit, recorded with it
        return fit_id

    def _refit_options(self, method: str) -> dict[str, Any]:
        """``num_samples``, ``delay``, ``half_life``, the prior given and the fit options
        (when the latest fit used ``method``) of the latest fit (the defaults before the
        first fit)."""
        fits = self.store.fits(self._id)
        options = fits[-1]["options"] if fits else {}
        delay = options.get("delay")
        return {
            "num_samples": int(options.get("num_samples", 1000)),
            "delay": None if delay is None else parse_delay(delay),
            "half_life": options.get("half_life"),
            "prior": read_prior(options.get("prior")),
            "fit_options": read_options(options.get("fit_options"), method),
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
            self._posteriors[fit_id] = Posterior.from_bytes(self.store.fit_posterior(fit_id))
        return self._posteriors[fit_id]

    def stale(self) -> str | None:
        """Why the latest fit is out of date (new batches, a new space), or None."""
        return view.stale(self.store, self._id)

    def _check_ages(self, obs: Observations, delay) -> None:
        # delay="auto" on a campaign that never stored click times fits without a delay,
        # saying why (fit's DelayWarning); batches with and without ages are refused
        mixed = delay != "auto" or obs.delay_counts is not None
        if delay is not None and obs.age is None and mixed:
            raise ValueError(
                f"campaign {self.name!r}: delay needs the age of every stored row; some "
                "batches have none (ingest event logs with `ingest_events`, or results with "
                "an 'age' column), or fit without delay"
            )
