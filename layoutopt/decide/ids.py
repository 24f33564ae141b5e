"""Information-directed sampling (Russo & Van Roy 2018) from posterior draws.

Thompson sampling gives each layout the posterior probability that it is the best. Late in
a campaign that keeps sending traffic to layouts the posterior already knows are worse,
because a layout with a small chance of being the best gets that small share of traffic
whatever it would cost and whatever it would teach. Information-directed sampling weighs
the two: it plays the distribution ``q`` over layouts minimising the *information ratio*

    Psi(q) = Delta(q)^2 / g(q),     Delta(q) = sum_x q_x Delta_x,     g(q) = sum_x q_x g_x

where ``Delta_x = E[v(best)] - E[v(x)]`` is the expected regret of serving ``x`` and
``g_x`` what serving it tells about which layout is the best. With the variance-based gain
(Russo & Van Roy's tractable version, exact for Gaussian observations)

    g_x = sum_a P(best = a) (E[v(x) | best = a] - E[v(x)])^2,

everything is read off the S posterior draws: draw s has its best layout ``a_s`` (exact,
from the same per-draw argmax that P(best) counts), and the conditional means are the
means over the draws that share a best. The minimiser is supported on at most two layouts
(Russo & Van Roy, Proposition 6); for a pair ``(i, j)`` the optimal mixing weight of ``i``
has the closed form ``q = Delta_j / (Delta_i - Delta_j) - 2 g_j / (g_i - g_j)`` clipped to
``[0, 1]``, so the search is over every pair of candidate layouts. Candidates are the
layouts that are the best in at least one draw (a layout no draw believes best has
``g_x`` from its correlation with them only, and Thompson's support is where the decision
lies). A batch of impressions is split by ``q``.

Reference:
    Russo, D. & Van Roy, B. (2018). Learning to optimize via information-directed sampling.
    Operations Research 66(1), 230-252.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ids_weights"]


def ids_weights(values: np.ndarray, winner: np.ndarray, best_values: np.ndarray) -> np.ndarray:
    """The information-directed sampling distribution over ``n`` candidate layouts.

    Args:
        values: ``(S, n)`` value (CTR) of each candidate in each posterior draw.
        winner: ``(S,)`` index of each draw's best layout among the candidates.
        best_values: ``(S,)`` value of each draw's best layout.

    Returns:
        ``(n,)`` weights summing to 1, at most two of them positive. One candidate gets
        everything when it is the best in every draw (nothing left to learn about the best)
        or when the candidates' gains all vanish.

    Raises:
        ValueError: for mismatched shapes or a winner outside the candidates.
    """
    values = np.asarray(values, np.float64)
    winner = np.asarray(winner, np.int64).reshape(-1)
    best_values = np.asarray(best_values, np.float64).reshape(-1)
    S, n = values.shape
    if winner.shape != (S,) or best_values.shape != (S,):
        raise ValueError(
            f"winner and best_values need one entry per draw ({S}), got {winner.shape} and "
            f"{best_values.shape}"
        )
    if n == 0 or winner.min() < 0 or winner.max() >= n:
        raise ValueError(f"every draw's winner must be one of the {n} candidates")
    mean = values.mean(axis=0)
    regret = np.maximum(best_values.mean() - mean, 0.0)
    counts = np.bincount(winner, minlength=n).astype(np.float64)
    p = counts / S
    sums = np.zeros((n, n))
    np.add.at(sums, winner, values)  # sums[a, x] = sum over draws won by a of v_s(x)
    won = counts > 0
    cond = sums[won] / counts[won, None]  # E[v(x) | best = a] for the winners a
    gain = np.sum(p[won, None] * (cond - mean[None, :]) ** 2, axis=0)
    weights = np.zeros(n)
    if n == 1 or np.count_nonzero(won) == 1 or not np.any(gain > 0):
        weights[int(np.argmin(regret))] = 1.0
        return weights
    ratio, q, i, j = _best_pair(regret, gain)
    weights[i] += q
    weights[j] += 1.0 - q
    return weights


def _best_pair(regret: np.ndarray, gain: np.ndarray) -> tuple[float, float, int, int]:
    """``(ratio, q, i, j)``: the pair and mixing weight of the smallest information ratio
    ``(q Delta_i + (1 - q) Delta_j)^2 / (q g_i + (1 - q) g_j)`` (Proposition 6)."""
    d_i, d_j = regret[:, None], regret[None, :]
    g_i, g_j = gain[:, None], gain[None, :]
    dd, dg = d_i - d_j, g_i - g_j
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where((dd != 0) & (dg != 0), d_j / dd - 2.0 * g_j / dg, 0.0)
    q = np.clip(np.nan_to_num(q, nan=0.0), 0.0, 1.0)

    def psi(q):
        num = (q * d_i + (1.0 - q) * d_j) ** 2
        den = q * g_i + (1.0 - q) * g_j
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, 0.0))

    # the interior stationary point, or an end of the segment (a single layout)
    cands = np.stack([psi(q), psi(np.zeros_like(q)), psi(np.ones_like(q))])
    qs = np.stack([q, np.zeros_like(q), np.ones_like(q)])
    flat = int(np.argmin(cands))
    which, rest = divmod(flat, cands.shape[1] * cands.shape[2])
    i, j = divmod(rest, cands.shape[2])
    return float(cands[which, i, j]), float(qs[which, i, j]), int(i), int(j)
