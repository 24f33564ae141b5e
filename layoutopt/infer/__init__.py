"""Inference: :func:`fit` (Laplace dense and low-rank, NUTS, SVI), the posterior, meta-priors
and delay estimation."""

from layoutopt.util.lazy import lazy_exports

# Public name -> the module that defines it, imported when the name is first read.
_EXPORTS = {
    "DelayWarning": "layoutopt.infer.data",
    "METHODS": "layoutopt.infer.fitting",
    "FitWarning": "layoutopt.infer.fitting",
    "GaussianPosterior": "layoutopt.infer.posterior",
    "LaplaceOptions": "layoutopt.infer.fitting",
    "MetaPrior": "layoutopt.infer.meta",
    "NutsOptions": "layoutopt.infer.fitting",
    "Posterior": "layoutopt.infer.posterior",
    "SviOptions": "layoutopt.infer.fitting",
    "default_prior": "layoutopt.infer.fitting",
    "fit": "layoutopt.infer.fitting",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
