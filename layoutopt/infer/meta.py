"""Empirical-Bayes meta-priors: group prior means and variances learned from past campaigns.

A :class:`MetaPrior` learned from past campaigns' posteriors gives one mean and one variance
per *group* of parameters and fixes them::

    b0        ~ N(mu_0, s_0^2)
    e_k[v]    ~ N(mu_k, s_k^2)          every variant of component k (seen before or not)
    p_kl[a,b] ~ N(mu_kl, s_kl^2)        every cell of the pair table (k, l)
    beta_k,j  ~ N(mu_kj, s_kj^2)        every attribute coefficient

so a variant never seen before starts from its component's group prior plus what its
attributes predict (``a_k(v) . beta_k``), never from a bare zero. Groups match across spaces
by component name (pairs by the two names, coefficients by component and column name);
groups a meta-prior does not know fall back to :class:`~layoutopt.PriorConfig`'s defaults.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import pair_list
from layoutopt.model.priors import (
    LINKS,
    Prior,
    PriorConfig,
    PriorSpec,
    attribute_design,
    resolve_prior,
)
from layoutopt.model.space import LayoutSpace
from layoutopt.model.spec import ModelSpec
from layoutopt.util.io import atomic_path

__all__ = ["MetaPrior"]

# -------------------------------------------------------------------------------- MetaPrior
_FORMAT = "layoutopt.metaprior/1"


@dataclass(frozen=True)
class MetaPrior:
    """Group prior means and variances learned from past campaigns (empirical Bayes).

    Groups are named ``"intercept"``, ``"main:<component>"``, ``"pair:<component>|<component>"``
    and ``"attr:<component>:<column>"``; each maps to ``(mean, variance)`` on the link scale.
    A fit with ``prior=meta`` fixes every parameter's prior at its group's ``N(mean,
    variance)`` (scales are not re-learned: with thin traffic the campaign's own empirical
    Bayes is what the meta-prior replaces). Groups the meta-prior lacks get
    :class:`PriorConfig`'s defaults (sd ``main_scale``, ``pair_scale``,
    ``attribute_scale``; mean 0).

    Attributes:
        groups: ``{group name: (mean, variance)}``.
        sources: names of the campaigns (posteriors) it was learned from.
        link: the link function of those fits (a fit with another link is refused).
        pairwise: whether those fits had pair terms.
        counts: ``{group name: number of campaigns that informed it}``.

    References:
        Nabi, Nassif, Hong, Mamani, Imbens, *Bayesian meta-prior learning using Empirical
        Bayes* (Management Science 2022); Bastani, Simchi-Levi, Zhu, *Meta Dynamic Pricing:
        Transfer Learning Across Experiments* (Management Science 2022) for widening a
        prior estimated from few experiments by its estimation error.
    """

    groups: dict[str, tuple[float, float]]
    sources: tuple[str, ...] = ()
    link: str = "logit"
    pairwise: bool = True
    counts: dict[str, int] | None = None

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.groups.items())), self.sources, self.link, self.pairwise))

    # ------------------------------------------------------------------------- learning
    @classmethod
    def learn(
        cls,
        posteriors: Sequence[Posterior],
        sources: Sequence[str] | None = None,
        min_variance: float = 1e-4,
    ) -> MetaPrior:
        """Estimate group prior means and variances from past campaigns' posteriors.

        For a group ``g`` with posterior means ``x_j`` and posterior variances ``v_j`` of
        its ``n`` parameters (pooled over the campaigns that have the group), the
        method-of-moments empirical-Bayes estimates are::

            mu_g  = mean(x)
            tau_g^2 = max(mean((x - mu_g)^2) + mean(v), min_variance)

        by the law of total variance, ``Var(theta) = Var(E[theta | y]) + E[Var(theta |
        y)]``: posterior means are shrunk, so their spread alone understates the spread
        of the effects, and the posterior variances restore the rest. The prior
        variance used is widened by the estimation error of both, so a meta-prior learned
        from few campaigns is not overconfident::

            s_g^2 = tau_g^2 + se(mu_g)^2 + se(tau_g^2),
            se(mu_g)^2 = (tau_g^2 + mean(v)) / n,
            se(tau_g^2) = sqrt(2 / (n - 1)) (tau_g^2 + mean(v)).

        Main effects enter as residuals ``e = m - A beta`` when the space has attributes.
        Spaces may differ: groups match by component name. A group seen in fewer than two
        parameters is skipped (its default prior is used).

        Args:
            posteriors: fitted :class:`~layoutopt.Posterior` objects of past campaigns, all
                with the same link.
            sources: a name per posterior (campaign names); default ``"posterior 0"``, ...
            min_variance: floor of ``tau_g^2``.

        Returns:
            The :class:`MetaPrior`.

        Raises:
            ValueError: for no posteriors, mixed links, or a wrong number of sources.

        Examples:
            >>> meta = MetaPrior.learn([a, b], sources=["spring", "summer"])  # doctest: +SKIP
            >>> post = fit(space, obs, prior=meta, seed=0)  # doctest: +SKIP
        """
        posteriors = list(posteriors)
        if not posteriors or not all(isinstance(p, Posterior) for p in posteriors):
            raise ValueError("MetaPrior.learn needs a non-empty list of Posterior objects")
        links = {p.prior.link for p in posteriors}
        if len(links) > 1:
            raise ValueError(f"posteriors use different links {sorted(links)}; use one link")
        if sources is None:
            sources = [f"posterior {i}" for i in range(len(posteriors))]
        sources = [str(s) for s in sources]
        if len(sources) != len(posteriors):
            raise ValueError(f"{len(sources)} sources for {len(posteriors)} posteriors")
        pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for post in posteriors:
            for name, draws in _group_draws(post).items():
                draws = np.asarray(draws, np.float64).reshape(draws.shape[0], -1)
                pooled.setdefault(name, []).append((draws.mean(0), draws.var(0)))
        # Extension point (segments, issue 11): segment deviations d_k[s] would add groups
        # "segment:<variable>:<component>" here, and PriorSpec fields for their means/sds.
        groups, counts = {}, {}
        for name, parts in pooled.items():
            x = np.concatenate([m for m, _ in parts])
            v = np.concatenate([s for _, s in parts])
            n = x.size
            if n < 2:
                continue
            mu = float(x.mean())
            noise = float(v.mean())
            tau2 = max(float(np.mean((x - mu) ** 2)) + noise, min_variance)
            se_mu2 = (tau2 + noise) / n
            se_tau2 = math.sqrt(2.0 / (n - 1)) * (tau2 + noise)
            groups[name] = (mu, tau2 + se_mu2 + se_tau2)
            counts[name] = len(parts)
        pairwise = all(p.prior.pairwise for p in posteriors)
        return cls(groups, tuple(sources), links.pop(), pairwise, counts)

    # ------------------------------------------------------------------------- using it
    def spec(self, space: LayoutSpace, defaults: PriorConfig | None = None) -> PriorSpec:
        """This meta-prior resolved for ``space`` (fixed means and sds per parameter).

        Args:
            space: the space to be fitted.
            defaults: where a group is unknown, its default scale comes from here
                (``PriorConfig(link=self.link, pairwise=self.pairwise)`` when None).
        """
        base = defaults or self.config()
        spec = base.spec(space)
        comps = space.components

        def get(name, default_sd):
            mean, var = self.groups.get(name, (0.0, default_sd**2))
            return mean, math.sqrt(var)

        main_loc, main_scale = [], []
        for k, comp in enumerate(comps):
            mean, sd = get(f"main:{comp}", base.main_scale)
            main_loc.append(np.full(space.cardinalities[k], mean))
            main_scale.append(sd)
        pair_loc, pair_scale = [], []
        if base.pairwise:
            for k, j in pair_list(len(comps)):
                mean, sd = get(_pair_group(comps[k], comps[j]), base.pair_scale)
                pair_loc.append(np.full(space.cardinalities[k] * space.cardinalities[j], mean))
                pair_scale.append(sd)
        _, names = attribute_design(space)
        beta = [get(f"attr:{n}", base.attribute_scale) for n in names]
        b0_mean, b0_sd = get("intercept", base.intercept_scale)
        if "intercept" not in self.groups:
            b0_mean = base.intercept_loc
        return spec._replace(
            intercept_loc=b0_mean,
            intercept_scale=b0_sd,
            main_loc=np.concatenate(main_loc),
            main_scale=np.asarray(main_scale),
            pair_loc=np.concatenate(pair_loc) if pair_loc else np.zeros(0),
            pair_scale=np.asarray(pair_scale),
            beta_loc=np.asarray([m for m, _ in beta]),
            beta_scale=np.asarray([s for _, s in beta]),
            learn_scales=False,
        )

    def resolve(
        self, spec: ModelSpec, space: LayoutSpace, defaults: PriorConfig | None = None
    ) -> Prior:
        """This meta-prior as the :class:`~layoutopt.model.priors.Prior` of ``spec``: the
        groups' means and sds fixed (not learned), segment groups at the defaults.

        Args:
            spec: the model to fit.
            space: its space (component and attribute names match the groups).
            defaults: the settings of groups the meta-prior does not know (:meth:`spec`);
                ``fit`` passes :meth:`config` with the base rate of the data when the
                meta-prior has no intercept group.

        Returns:
            The :class:`~layoutopt.model.priors.Prior`.
        """
        defaults = defaults or self.config()
        return resolve_prior(spec, self.spec(space, defaults), defaults)

    def config(self) -> PriorConfig:
        """The :class:`PriorConfig` a fit with this meta-prior records (link, pairwise, and
        the base rate at the learned intercept mean; None, i.e. the data's pooled rate, when
        the meta-prior has no intercept group)."""
        rate = None
        if "intercept" in self.groups:
            mean = self.groups["intercept"][0]
            if self.link == "logit":
                rate = 1.0 / (1.0 + math.exp(-mean))
            else:
                rate = float(ndtr(mean))
        if rate is not None:
            rate = float(np.clip(rate, 1e-6, 1 - 1e-6))
        return PriorConfig(base_rate=rate, link=self.link, pairwise=self.pairwise)

    # ------------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain-data (JSON) form read back by :meth:`from_dict`."""
        return {
            "format": _FORMAT,
            "sources": list(self.sources),
            "link": self.link,
            "pairwise": self.pairwise,
            "groups": {
                name: {"mean": m, "variance": v, "campaigns": (self.counts or {}).get(name)}
                for name, (m, v) in sorted(self.groups.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "meta-prior") -> MetaPrior:
        """Build from :meth:`to_dict`'s form.

        Raises:
            ValueError: naming ``source`` when the data are not a layoutopt meta-prior.
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{source}: not a layoutopt meta-prior (format {_FORMAT!r})")
        try:
            groups, counts = {}, {}
            for name, g in data["groups"].items():
                mean, var = float(g["mean"]), float(g["variance"])
                if not (math.isfinite(mean) and math.isfinite(var) and var > 0):
                    raise ValueError(
                        f"group {name!r} has mean {mean} and variance {var}; need finite "
                        "values and a positive variance"
                    )
                groups[str(name)] = (mean, var)
                if g.get("campaigns") is not None:
                    counts[str(name)] = int(g["campaigns"])
            link = str(data["link"])
            if link not in LINKS:
                raise ValueError(f"link {link!r} is not one of {LINKS}")
            return cls(
                groups, tuple(str(s) for s in data["sources"]), link, bool(data["pairwise"]), counts
            )
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(
                f"{source}: malformed meta-prior ({type(err).__name__}: {err})"
            ) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the meta-prior as readable JSON (atomically), naming its source campaigns."""
        with atomic_path(path) as tmp, open(tmp, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2)
            fh.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> MetaPrior:
        """Read a meta-prior written by :meth:`save`.

        Raises:
            ValueError: naming the file when it is missing or not a meta-prior.
        """
        path = os.fspath(path)
        try:
            with open(path) as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise ValueError(f"{path}: no such meta-prior file") from None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a readable meta-prior ({err})") from None
        return cls.from_dict(data, source=path)


def _pair_group(a: str, b: str) -> str:
    return "pair:" + "|".join(sorted((a, b)))


def _group_draws(post: Posterior) -> dict[str, np.ndarray]:
    """Draws ``(S, ...)`` of every group's parameters in one posterior."""
    space = post.space
    comps = space.components
    out = {"intercept": np.asarray(post.params.intercept)[:, None]}
    beta = post.hyper.get("beta")
    A, names = attribute_design(space)
    offsets = np.concatenate([[0], np.cumsum(space.cardinalities)])
    for k, comp in enumerate(comps):
        main = np.asarray(post.params.main[k], np.float64)
        if beta is not None and A.shape[1]:
            main = main - np.asarray(beta, np.float64) @ A[offsets[k] : offsets[k + 1]].T
        out[f"main:{comp}"] = main
    for (k, j), table in zip(pair_list(len(comps)), post.params.pair, strict=False):
        out[_pair_group(comps[k], comps[j])] = np.asarray(table)
    if beta is not None:
        for i, name in enumerate(names):
            out[f"attr:{name}"] = np.asarray(beta)[:, i : i + 1]
    return out
