"""One additive + pairwise model per metric: the existing fit, run on each metric's data.

Each metric's counts are a Binomial out of the same impressions, and its parameters get
their own priors, so the joint posterior of all metrics factorises into one posterior per
metric: fitting them one after another with :func:`~layoutopt.infer.fitting.fit` gives the
joint posterior exactly (draw s of each metric together is a joint draw), with each model
only as large as one metric's (the fitters' size limits apply per metric) and every fitter,
option and diagnostic unchanged. Any option may differ between metrics (a mapping
``{metric: value}``): a sign-up that arrives days after the click gets its own
``delay="auto"``, learned from its own delays (``Observations.metric_delays``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from layoutopt.data.observations import Observations
from layoutopt.infer.fitting import fit
from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.util.limits import check_seed
from layoutopt.util.seeds import split_seed

__all__ = ["fit_metrics"]


def fit_metrics(
    space: LayoutSpace,
    observations: Observations,
    metrics: Sequence[str] | None = None,
    method: str = "laplace",
    *,
    seed: int = 0,
    **options: Any,
) -> dict[str, Posterior]:
    """Fit every metric's model: ``{metric: Posterior}``.

    Args:
        space: the layout space.
        observations: data counting the metrics (``Observations.from_frame(...,
            metrics=(...))``).
        metrics: which metrics to fit, in order (default: all that the data count,
            ``observations.metric_names``).
        method: the fit method, as :func:`~layoutopt.infer.fitting.fit`.
        seed: one seed; each metric's fit gets its own seed split from it (by position in
            ``metrics``), so the same inputs give the same draws.
        **options: any further keyword of :func:`~layoutopt.infer.fitting.fit`
            (``num_samples``, ``prior``, ``options``, ``delay``, ``half_life``), the same for
            every metric, or (all but ``num_samples``, which the objective's per-draw sums
            need equal) a mapping ``{metric: value}`` per metric, a metric left out getting
            ``fit``'s default: ``delay={"clicks": "auto", "signups": "auto"}`` learns each
            metric's delay from its own observed delays.

    Returns:
        ``{metric: Posterior}`` in the order of ``metrics``, every posterior with the same
        number of draws.

    Raises:
        ValueError: for a metric the data do not count, a repeated metric, a per-metric
            mapping naming another metric (or given for ``num_samples``), or any error of
            :func:`~layoutopt.infer.fitting.fit` (prefixed with the metric's name).
    """
    names = tuple(observations.metric_names if metrics is None else metrics)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"metrics must be distinct names, at least one; got {list(names)}")
    views = {m: observations.metric(m) for m in names}  # unknown metrics refused up front
    seeds = split_seed(check_seed(seed), len(names))
    per = _per_metric(options, names)
    out = {}
    for (m, obs), s in zip(views.items(), seeds, strict=True):
        try:
            out[m] = fit(space, obs, method, seed=s, **per[m])
        except ValueError as err:
            raise ValueError(f"metric {m!r}: {err}") from None
    return out


def _per_metric(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{metric: fit keywords}``: a keyword's mapping value split by metric (a metric left
    out of a mapping gets ``fit``'s default); any other value is every metric's."""
    out: dict[str, dict[str, Any]] = {m: {} for m in names}
    for key, value in options.items():
        if not isinstance(value, Mapping):
            for m in names:
                out[m][key] = value
            continue
        unknown = [m for m in value if m not in names]
        if key == "num_samples" or unknown:
            why = (
                "needs one value for every metric"
                if key == "num_samples"
                else (f"names {unknown}, not among the metrics fitted {list(names)}")
            )
            raise ValueError(f"{key}={dict(value)!r}: a per-metric {key} {why}")
        for m, v in value.items():
            out[m][key] = v
    return out
