"""Off-policy evaluation: what another allocation would have earned, from logged propensities.

Logged rows are aggregated impressions: row ``i`` served layout ``x_i`` to ``n_i`` impressions
with propensity ``mu_i`` (the probability the logging policy chose ``x_i``, carried from
:mod:`layoutopt.campaign.assign` or a log's ``propensity`` column) and got ``c_i`` clicks.
For a target policy ``pi`` (an allocation: a probability per layout) the estimators of its
click-through ``V(pi) = sum_x pi(x) ctr(x)`` are, with ``N = sum_i n_i`` and
``rho_i = pi(x_i) / mu_i``:

* **IPS**: ``sum_i rho_i c_i / N`` (unbiased when ``mu > 0`` wherever ``pi > 0``);
* **self-normalised IPS**: ``sum_i rho_i c_i / sum_i rho_i n_i`` (biased, lower variance);
* **doubly robust**: ``sum_x pi(x) q(x) + sum_i rho_i (c_i - n_i q(x_i)) / N`` with ``q`` the
  fitted model's CTR (the direct method plus an IPS correction of its residuals: unbiased if
  either the propensities or the model are right, and of lower variance when the model is);
* **slate pseudo-inverse** (per-component randomisation: the logging policy draws each
  component independently, ``mu(x) = prod_k mu_k(x_k)``, and the reward is additive over
  components): ``sum_i c_i (sum_k pi_k(x_ik) / mu_k(x_ik) - (K - 1)) / N`` with ``pi_k`` the
  target's marginal of component ``k``.

Each comes with a bootstrap interval that resamples impressions: the ``N`` impressions are
drawn again from the empirical distribution of (row, clicked) cells, a multinomial, so the
interval costs ``O(B x rows)`` however large the traffic.

References:
    Horvitz & Thompson (JASA 1952); Dudik, Langford & Li, *Doubly robust policy evaluation
    and learning* (ICML 2011); Swaminathan, Krishnamurthy, Agarwal, Dudik, Langford, Jose &
    Zitouni, *Off-policy evaluation for slate recommendation* (NeurIPS 2017).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["LoggedRows", "Estimate", "ESTIMATORS", "evaluate_policy"]

ESTIMATORS = ("ips", "snips", "dr", "slate")


class LoggedRows(NamedTuple):
    """Aggregated logged rows.

    Attributes:
        impressions: ``(R,)`` impressions of each row.
        clicks: ``(R,)`` clicks of each row.
        propensity: ``(R,)`` probability the logging policy chose the row's layout.
        target: ``(R,)`` probability the target policy chooses the row's layout.
        model: ``(R,)`` the model's CTR of the row's layout (doubly robust), or None.
        model_value: the model's CTR of the target policy, ``sum_x pi(x) q(x)``, or None.
        component_ratio: ``(R,)`` ``sum_k pi_k(x_k) / mu_k(x_k) - (K - 1)`` of the row's
            layout (slate pseudo-inverse), or None when the log was not randomised per
            component.
    """

    impressions: np.ndarray
    clicks: np.ndarray
    propensity: np.ndarray
    target: np.ndarray
    model: np.ndarray | None = None
    model_value: float | None = None
    component_ratio: np.ndarray | None = None


class Estimate(NamedTuple):
    """One estimator's answer.

    Attributes:
        estimator: its name (``"ips"``, ``"snips"``, ``"dr"``, ``"slate"``).
        value: the estimated click-through of the target policy.
        lower, upper: the bootstrap percentile interval at ``level``.
        level: the interval's level.
    """

    estimator: str
    value: float
    lower: float
    upper: float
    level: float


def _estimates(rows: LoggedRows, n: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """Every available estimator for counts ``n``, ``c`` of shape ``(..., R)``."""
    total = n.sum(-1)
    rho = rows.target / rows.propensity
    out = {
        "ips": (rho * c).sum(-1) / total,
        "snips": (rho * c).sum(-1) / np.maximum((rho * n).sum(-1), 1e-300),
    }
    if rows.model is not None and rows.model_value is not None:
        out["dr"] = rows.model_value + (rho * (c - n * rows.model)).sum(-1) / total
    if rows.component_ratio is not None:
        out["slate"] = (rows.component_ratio * c).sum(-1) / total
    return out


def _check(rows: LoggedRows) -> None:
    n, c, mu = (np.asarray(a, np.float64) for a in rows[:3])
    if n.ndim != 1 or not (len(n) == len(c) == len(mu) == len(rows.target)):
        raise ValueError("logged rows need one impressions, clicks, propensity, target each")
    if len(n) == 0 or n.sum() <= 0:
        raise ValueError("off-policy evaluation needs logged impressions; none given")
    if np.any(c < 0) or np.any(c > n):
        raise ValueError("logged clicks must lie between 0 and the impressions of their row")
    bad = ~((mu > 0) & (mu <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"logged row {i} has propensity {mu[i]!r}; propensities must lie in (0, 1] "
            "(the probability with which the logged layout was chosen)"
        )


def evaluate_policy(
    rows: LoggedRows,
    *,
    level: float = 0.9,
    num_bootstrap: int = 1000,
    seed: int,
) -> list[Estimate]:
    """Estimate the target policy's click-through from logged rows, with intervals.

    Args:
        rows: the :class:`LoggedRows` (``target`` filled for the policy to evaluate).
        level: level of the bootstrap percentile intervals.
        num_bootstrap: bootstrap replicates B.
        seed: seed of the bootstrap.

    Returns:
        One :class:`Estimate` per available estimator, in :data:`ESTIMATORS` order (doubly
        robust only with a model, slate only with component ratios).

    Raises:
        ValueError: for inconsistent rows, no impressions, or propensities outside (0, 1].
    """
    _check(rows)
    rows = rows._replace(**{k: np.asarray(v, np.float64) for k, v in rows._asdict().items()
                            if isinstance(v, np.ndarray | list)})  # fmt: skip
    n, c = rows.impressions, rows.clicks
    point = _estimates(rows, n, c)
    cells = np.concatenate([c, n - c])
    total = int(round(cells.sum()))
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(total, cells / cells.sum(), size=int(num_bootstrap)).astype(float)
    R = len(n)
    boot = _estimates(rows, draws[:, :R] + draws[:, R:], draws[:, :R])
    alpha = (1.0 - level) / 2.0
    out = []
    for name in ESTIMATORS:
        if name in point:
            lo, hi = np.quantile(boot[name], [alpha, 1.0 - alpha])
            out.append(Estimate(name, float(point[name]), float(lo), float(hi), float(level)))
    return out
