"""Inference: :func:`fit` (Laplace dense and low-rank, NUTS, SVI), the posterior, meta-priors
and delay estimation."""

from layoutopt.infer.data import DelayWarning
from layoutopt.infer.fitting import (
    METHODS,
    FitWarning,
    LaplaceOptions,
    NutsOptions,
    SviOptions,
    default_prior,
    fit,
)
from layoutopt.infer.meta import MetaPrior
from layoutopt.infer.posterior import GaussianPosterior, Posterior

__all__ = [
    "METHODS",
    "DelayWarning",
    "FitWarning",
    "GaussianPosterior",
    "LaplaceOptions",
    "MetaPrior",
    "NutsOptions",
    "Posterior",
    "SviOptions",
    "default_prior",
    "fit",
]
