"""``half_life="auto"``: how fast tastes change, chosen by the data's prequential evidence.

A discount says how much an older round still counts: a half-life ``h`` weighs a row
``a`` rounds older than the newest data by ``0.5 ** (a / h)`` (a power prior), a change
point ``c`` drops every round before ``c``. Their plain marginal likelihoods are not
comparable (a power-discounted likelihood is a different amount of data for every ``h``), so
each candidate ``d`` is scored *prequentially* (Dawid 1984): every round ``r`` after the
first is predicted from the rounds before it, discounted by ``d`` as a fit made just before
``r`` would have discounted them, and the log predictive probabilities are added::

    S(d) = sum_{r > r_0} sum_{i in round r} log p_d(y_i | rounds < r)
    p_d(y_i | past) = int Binomial(y_i | n_i, F_i inv_link(eta)) N(eta; m_i, v_i) d eta

where ``N(m_i, v_i)`` is row i's eta under the Laplace posterior of the discounted past
(eta is linear in the parameters, so it is exactly Gaussian there) and the integral is an
adaptive Gauss-Hermite rule around the mode of the integrand. Every candidate is scored on
the same rows with the same rule, so the scores compare; ``S`` is the evidence of the data
for a forecaster that discounts by ``d``. A change point at ``c`` predicts the rounds before
``c`` as no discounting does (the change has not happened yet), round ``c`` from the prior
alone (nothing of the new tastes has been seen) and later rounds from rounds ``c`` onwards:
the single change-point model, whose evidence pays for the change with the prior
predictive of round ``c``, so it wins only where the older data mislead more than no data.
The choice is the most probable candidate a posteriori, ``argmax_d S(d) + log pi(d)``,
under a prior ``pi`` that puts :data:`NO_DRIFT_PRIOR` on no discounting and spreads the
rest evenly over the others: with a dozen or so candidates a discount must beat no
discounting by about 2.5 nats (a Bayes factor of ~12) before it is used, so the noise
of stationary data (tenths of a nat) keeps the plain fit, while a real change of taste
wins by tens to hundreds of nats. Ties go to the first in :func:`candidates`, which lists
no discounting first.

References:
    Dawid, *Present position and potential developments: some personal views. Statistical
    theory: the prequential approach* (JRSS A 1984); Ibrahim & Chen, *Power prior
    distributions for regression models* (Statistical Science 2000); Adams & MacKay,
    *Bayesian online changepoint detection* (2007).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

from layoutopt.infer.data import TimeSetup
from layoutopt.infer.laplace_fit import laplace_gaussian
from layoutopt.infer.options import LaplaceOptions
from layoutopt.infer.problem import FitProblem
from layoutopt.model.core import log_likelihood, loglik_eta_derivatives

__all__ = [
    "AUTO_HALF_LIVES",
    "Discount",
    "DriftChoice",
    "NO_DRIFT_PRIOR",
    "candidates",
    "choose_discount",
    "log_predictive",
    "fixed_scales",
    "log_prior",
    "prequential_scores",
]

#: Half-lives in rounds that ``half_life="auto"`` compares, besides no discounting and a
#: change point at every round.
AUTO_HALF_LIVES = (8.0, 4.0, 2.0, 1.0, 0.5)
#: Prior probability of no discounting among ``half_life="auto"``'s candidates (the
#: others share the rest evenly).
NO_DRIFT_PRIOR = 0.5
#: Gauss-Hermite nodes of the predictive integral (within ~1e-5 nats of a brute-force
#: integral even for a broad prior over a probit tail; tests/infer/test_drift_auto.py).
_NODES = 24


class Discount(NamedTuple):
    """One way to weigh older rounds.

    Attributes:
        half_life: rounds after which a row weighs 1/2 (None: no decay).
        since: the first round kept, earlier rounds weigh 0 (a change of taste at this
            round); None: every round.
    """

    half_life: float | None = None
    since: int | None = None

    def weights(self, rounds, newest) -> np.ndarray:
        """Weights of rows of ``rounds`` in a fit whose newest round is ``newest`` (rows of
        later rounds weigh 0)."""
        rounds = np.asarray(rounds, np.float64)
        w = np.where(rounds <= newest, 1.0, 0.0)
        if self.half_life is not None:
            w = w * 0.5 ** (np.maximum(newest - rounds, 0.0) / self.half_life)
        if self.since is not None:
            w = w * (rounds >= self.since)
        return w

    @property
    def label(self) -> str:
        """``"none"``, ``"half-life 2"``, ``"change at round 8"`` (or both joined)."""
        parts = [] if self.since is None else [f"change at round {self.since}"]
        parts += [] if self.half_life is None else [f"half-life {self.half_life:g}"]
        return ", ".join(parts) or "none"

    def before(self, target) -> Discount:
        """The discount of a fit made just before round ``target``: a change point at a
        later round has not happened yet."""
        if self.since is not None and target < self.since:
            return self._replace(since=None)
        return self


class DriftChoice(NamedTuple):
    """What ``half_life="auto"`` chose and why.

    Attributes:
        discount: the winning :class:`Discount`.
        scores: prequential log score ``S(d)`` of every candidate (nats), by label.
        rounds: number of rounds scored (all but the first).
    """

    discount: Discount
    scores: dict[str, float]
    rounds: int

    def diagnostics(self) -> dict:
        """The fit's diagnostics of the choice: ``half_life`` (None: no decay),
        ``change_round`` (None: every round kept), ``half_life_auto`` (the winner's label
        and its gain over no discounting) and ``drift_scores`` (each candidate's score
        minus that of no discounting, nats)."""
        base = self.scores.get("none", 0.0)
        gain = self.scores[self.discount.label] - base
        return {
            "half_life": self.discount.half_life,
            "change_round": self.discount.since,
            "half_life_auto": (
                f"{self.discount.label} (prequential log score {gain:+.1f} nats over no "
                f"discounting, {self.rounds} round{'' if self.rounds == 1 else 's'} scored)"
            ),
            "drift_scores": {k: round(v - base, 3) for k, v in self.scores.items()},
        }


def candidates(rounds) -> tuple[Discount, ...]:
    """The discounts ``half_life="auto"`` compares on data with these ``rounds``: none,
    :data:`AUTO_HALF_LIVES`, and a change point at every round but the first."""
    later = np.unique(np.asarray(rounds))[1:]
    return (
        (Discount(),)
        + tuple(Discount(half_life=h) for h in AUTO_HALF_LIVES)
        + tuple(Discount(since=int(c)) for c in later)
    )


def log_predictive(m, v, impressions, clicks, exposure, link: str) -> np.ndarray:
    """Per row, ``log int Binomial(y | n, F inv_link(eta)) N(eta; m, v) d eta``.

    Adaptive Gauss-Hermite: Newton finds the mode of the (log-concave) integrand, whose
    curvature sets the rule's scale. Includes the binomial coefficient, so it is a log
    probability; a row without impressions scores 0.

    Args:
        m: ``(N,)`` mean of eta.
        v: ``(N,)`` variance of eta.
        impressions: ``(N,)`` impressions.
        clicks: ``(N,)`` clicks.
        exposure: ``(N,)`` ``F(age)`` (ones without a delay model).
        link: the link function.

    Returns:
        ``(N,)`` log predictive probabilities.
    """
    # float64 throughout: a round's log probability is a sum of large terms that cancel.
    with jax.enable_x64(True):
        args = (jnp.asarray(a, jnp.float64) for a in (m, v, impressions, clicks, exposure))
        return np.asarray(_log_predictive(*args, link=link))


@partial(jax.jit, static_argnames="link")
def _log_predictive(m, v, n, y, f, link: str):
    v = jnp.maximum(v, 1e-12)

    def newton(eta, _):
        g, w = loglik_eta_derivatives(eta, n, y, link, f)
        return eta + (g - (eta - m) / v) / (w + 1.0 / v), None

    # Newton on a strongly concave 1-d function, from the prior mean.
    mode, _ = jax.lax.scan(newton, m, None, length=40)
    _, w = loglik_eta_derivatives(mode, n, y, link, f)
    s = jnp.sqrt(2.0 / (w + 1.0 / v))
    x, wq = np.polynomial.hermite.hermgauss(_NODES)
    eta = mode[None, :] + s[None, :] * x[:, None]
    log_prior = -0.5 * (eta - m) ** 2 / v - 0.5 * jnp.log(2 * jnp.pi * v)
    ll = log_likelihood(eta, n[None, :], y[None, :], link, f[None, :])
    terms = jnp.log(wq)[:, None] + x[:, None] ** 2 + log_prior + ll
    coef = gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
    return logsumexp(terms, axis=0) + jnp.log(s) + coef


def _moments(problem: FitProblem, weight, options: LaplaceOptions):
    """A function of row indices giving ``(m, v)`` of their eta under the Laplace posterior
    of ``problem`` with its rows weighed by ``weight``.

    eta of row i is ``x_i . theta`` with ``theta ~ N(mode, D - U U')``, so
    ``m = x_i . mode`` and ``v = x_i' D x_i - |x_i' U|^2``, read off the design's active
    columns (a row's columns are distinct).
    """
    time = problem.time._replace(weight=weight)
    weighed = problem._replace(data=problem.data._replace(weight=weight), time=time)
    fitted = laplace_gaussian(weighed, options)
    if fitted.factor is None:
        raise ValueError(
            "half_life='auto' scores each round's predictions under the Laplace fit's exact "
            f"covariance factor, which the conjugate-gradient solver (chosen for "
            f"{problem.spec.num_params:,} parameters on {len(problem.data.codes):,} rows) "
            "does not form; give half_life a number of rounds, or None"
        )
    mode, d, U = fitted.factor
    columns = np.asarray(fitted.design.columns)
    values = np.asarray(fitted.design.values, np.float64)

    def moments(rows):
        c, x = columns[rows], values[rows]
        xu = np.einsum("nc,ncr->nr", x, U[c])
        return np.sum(x * mode[c], axis=1), np.sum(x * x * d[c], axis=1) - np.sum(xu**2, axis=1)

    return moments


def fixed_scales(problem: FitProblem, options: LaplaceOptions) -> FitProblem:
    """``problem`` with its learned prior scales fixed at their empirical-Bayes values on
    all the rows, undiscounted.

    The scales are hyper-parameters of every candidate alike; fixing them once leaves the
    many prequential fits only the Newton iterations of the mode (a few instead of a few
    dozen with the scales' fixed point).
    """
    prior = problem.prior
    if not np.any(prior.learned):
        return problem
    fitted = laplace_gaussian(problem, options)
    unpooled = problem.spec.scale_groups(pooled=False).group
    first = np.array([np.flatnonzero(unpooled == j)[0] for j in range(len(prior.scale))])
    scale = np.asarray(fitted.out.scales, np.float64)[fitted.groups.group[first]]
    learned = np.zeros_like(prior.learned)
    return problem._replace(prior=prior._replace(scale=scale, learned=learned))


def prequential_scores(problem: FitProblem, discounts, options: LaplaceOptions) -> np.ndarray:
    """``S(d)`` of each discount (see the module docstring), from Laplace fits.

    Fits are shared between candidates that weigh the past alike (no discounting and
    every change point before a change, the prior alone at every change); all of them
    hold the prior scales at :func:`fixed_scales`.

    Args:
        problem: the fit problem (its rows need ``observations.round``).
        discounts: the :class:`Discount` candidates.
        options: the Laplace fits' options.

    Returns:
        ``(len(discounts),)`` log scores in nats.
    """
    rounds = np.asarray(problem.observations.round)
    data = problem.data
    order = np.unique(rounds)
    problem = fixed_scales(problem, options)
    fits: dict[bytes, Any] = {}
    total = np.zeros(len(discounts))
    for prev, target in zip(order[:-1], order[1:], strict=True):
        rows = np.flatnonzero(rounds == target)
        for i, d in enumerate(discounts):
            weight = d.before(target).weights(rounds, prev)
            key = weight.tobytes()
            if key not in fits:
                fits[key] = _moments(problem, weight, options)
            m, v = fits[key](rows)
            lp = log_predictive(
                m,
                v,
                data.impressions[rows],
                data.clicks[rows],
                data.exposure[rows],
                problem.spec.link,
            )
            total[i] += float(np.sum(lp))
    return total


def log_prior(discounts) -> np.ndarray:
    """``log pi(d)``: :data:`NO_DRIFT_PRIOR` on no discounting, the rest shared evenly."""
    plain = np.array([d == Discount() for d in discounts])
    if plain.all() or not plain.any():
        return np.zeros(len(discounts))
    rest = (1.0 - NO_DRIFT_PRIOR) / np.sum(~plain)
    return np.log(np.where(plain, NO_DRIFT_PRIOR / np.sum(plain), rest))


def choose_discount(
    problem: FitProblem, options: LaplaceOptions | None = None, discounts=None
) -> tuple[TimeSetup, DriftChoice]:
    """The discount of ``problem``'s rounds most probable a posteriori: the highest
    prequential log score plus :func:`log_prior`.

    Args:
        problem: the fit problem; its ``time`` gives the delay, its observations the rounds.
        options: the Laplace fits' options (None: the defaults).
        discounts: the candidates (None: :func:`candidates` of the data's rounds).

    Returns:
        ``(time, choice)``: the :class:`TimeSetup` of the final fit (the winner's weights,
        relative to the newest round) and the :class:`DriftChoice`.
    """
    rounds = np.asarray(problem.observations.round)
    discounts = candidates(rounds) if discounts is None else tuple(discounts)
    options = LaplaceOptions() if options is None else options
    scores = prequential_scores(problem, discounts, options)
    best = discounts[int(np.argmax(scores + log_prior(discounts)))]
    choice = DriftChoice(
        best,
        {d.label: float(s) for d, s in zip(discounts, scores, strict=True)},
        len(np.unique(rounds)) - 1,
    )
    weight = best.weights(rounds, rounds.max())
    time = TimeSetup(problem.time.delay, best.half_life, weight, choice.diagnostics())
    return time, choice
