"""The fitted posterior: draws of the model parameters plus diagnostics and the space."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from layoutopt.model import Params, PriorConfig
from layoutopt.space import LayoutSpace

__all__ = ["Posterior"]


@dataclass(frozen=True, eq=False)
class Posterior:
    """Posterior draws of the additive + pairwise model.

    Attributes:
        space: the :class:`LayoutSpace` the model was fitted on (so scoring needs nothing else).
        prior: the :class:`PriorConfig` used.
        params: :class:`Params` whose arrays carry a leading draw axis of length S
            (chains are concatenated chain-major: draws of chain 0, then chain 1, ...).
        method: ``"laplace"``, ``"nuts"`` or ``"svi"``.
        num_chains: number of chains the S draws are split into (1 for laplace/svi).
        hyper: hyper-parameter draws or point values, e.g. ``{"sigma_main": (S, K),
            "tau_pair": (S, P)}``.
        diagnostics: e.g. ``{"max_r_hat": ..., "min_ess": ..., "num_divergences": ...}`` for
            NUTS, ``{"converged": ..., "iterations": ...}`` for Laplace, ``{"final_loss": ...}``
            for SVI.
        observed_codes: ``(N, K)`` codes of the layouts the fit saw (may be empty).
    """

    space: LayoutSpace
    prior: PriorConfig
    params: Params
    method: str
    num_chains: int = 1
    hyper: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    observed_codes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))

    @property
    def num_draws(self) -> int:
        """Total number of posterior draws S (all chains)."""
        return int(np.shape(self.params.intercept)[0])

    def mean_params(self) -> Params:
        """Posterior mean of every parameter (no draw axis)."""
        return jax.tree.map(lambda a: np.asarray(a).mean(axis=0), self.params)
