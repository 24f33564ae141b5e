"""A stored campaign's round: the campaign's policy, and its allocation as a recorded proposal.

:meth:`layoutopt.campaign.Campaign.propose` builds the policy that its strategy and options
name (:func:`campaign_policy`: a :mod:`layoutopt.policies` factory), resumes it from the
store (:func:`layoutopt.decide.driver.resume`) and runs the driver's one loop body,
:func:`layoutopt.decide.driver.round_step`, on the store's observations with the keys of
:func:`layoutopt.decide.driver.round_keys`. The allocation of that step becomes the recorded
proposal (:func:`allocation_frame`), so a stored and a simulated campaign with the same
data, policy and seed propose the same layouts with the same weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from layoutopt.decide import policies
from layoutopt.decide.interface import Allocation, Policy
from layoutopt.decide.proposals import STRATEGIES
from layoutopt.infer.meta import MetaPrior
from layoutopt.model.delay import Weibull
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace

__all__ = ["allocation_frame", "campaign_policy", "jsonable"]

_FACTORIES = {
    "thompson": policies.thompson,
    "top_two": policies.top_two,
    "greedy": policies.greedy,
    "ucb": policies.ucb,
}


def campaign_policy(
    strategy: str,
    k: int,
    *,
    method: str,
    prior: PriorConfig | MetaPrior | None,
    per_segment: bool,
    num_samples: int,
    delay: Weibull | str | None,
    half_life: float | None,
    fit_options: Any = None,
) -> Policy:
    """The model policy a stored campaign proposes with: ``lo.policies.<strategy>(k, ...)``.

    Args:
        strategy: one of :data:`layoutopt.decide.proposals.STRATEGIES`, the name of a
            :mod:`layoutopt.decide.policies` factory.
        k: most layouts per proposal (per segment with ``per_segment``).
        method: inference method of the policy's fit.
        prior: the prior of the campaign's latest fit or its meta-prior, or None for the
            policies' default prior (:func:`layoutopt.decide.model_policy.model_prior`).
        per_segment: on a space with segments, one proposal per segment.
        num_samples: posterior draws per fit.
        delay: the fit's click-delay model.
        half_life: the fit's half-life in rounds.
        fit_options: the fit method's options (None: its defaults).

    Returns:
        The :class:`~layoutopt.decide.interface.Policy`.

    Raises:
        ValueError: for an unknown strategy (listing the valid ones) or bad options.
    """
    if strategy not in _FACTORIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {list(STRATEGIES)}")
    return _FACTORIES[strategy](
        k,
        method=method,
        prior=prior,
        num_samples=num_samples,
        per_segment=per_segment,
        delay=delay,
        half_life=half_life,
        fit_options=fit_options,
    )


def allocation_frame(space: LayoutSpace, allocation: Allocation) -> pd.DataFrame:
    """A proposal as a table: ``index``, one label column per component, the segment columns
    when the allocation is per segment, and ``weight`` (summing to 1 within a segment).

    Rows keep the allocation's order: a :func:`layoutopt.propose` batch per segment, the
    segments in code order.
    """
    frame = space.frame(np.asarray(allocation.codes, np.int32))
    weights = np.asarray(allocation.weights, np.float64)
    if allocation.segments is not None:
        codes = np.asarray(allocation.segments, np.int64)
        labels = pd.DataFrame([space.segment_of(int(g)) for g in codes])
        for column in labels.columns:
            frame[column] = labels[column].to_numpy()
        totals = np.bincount(codes, weights, minlength=space.num_segments)
        weights = weights / totals[codes]
    else:
        weights = weights / weights.sum()
    frame["weight"] = weights
    return frame


def jsonable(obj: Any) -> Any:
    """Plain JSON values (numpy scalars and arrays become Python numbers and lists)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
