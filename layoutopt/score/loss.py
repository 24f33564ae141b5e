"""What shipping a layout would cost: expected loss and value remaining, draw by draw.

In posterior draw ``s`` the best allowed layout of the whole space has value
``v_s(best_s)`` and the layout ``x`` has ``v_s(x)`` (CTR, or the traffic mix's mixture CTR).
The *loss* of shipping ``x`` in that draw is their difference, and

- the **expected loss** is its posterior mean ``E[v(best) - v(x)]`` (GrowthBook's, VWO's and
  Eppo's "risk"), in CTR units; relative to the layout's value it is divided by ``E[v(x)]``;
- the **value remaining** is a high quantile (0.95 by default) of the *relative* loss
  ``(v_s(best_s) - v_s(x)) / v_s(x)``: with probability 0.95 no layout of the space beats
  ``x`` by more than this fraction (Scott's stopping rule of Google Analytics' multi-armed
  bandit experiments).

The per-draw best ``best_s`` is exact: from the same streamed pass that counts P(best) when
the space is enumerated, and from the exact per-draw argmax (branch and bound) above the
enumeration limit; the values of ``x`` and of the ``best_s`` are evaluated with the pass's
own arithmetic (:func:`~layoutopt.score.stream.draw_values_of_codes`). Both quantities are
Monte Carlo estimates over the S draws: the expected loss has a standard error of about
``sd_s(loss) / sqrt(S)``, reported as ``expected_loss_se``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.grid_scores import score_grid
from layoutopt.score.optimize import AUTO_ENUMERATE_LIMIT
from layoutopt.score.stream import draw_values_of_codes
from layoutopt.score.target import Target, check_level, scoring_target

__all__ = ["Loss", "checked_codes", "expected_loss", "per_draw_best"]


class Loss(NamedTuple):
    """Expected loss and value remaining of shipping each of ``n`` layouts.

    Attributes:
        codes: ``(n, K)`` variant codes of the layouts.
        mean: ``(n,)`` posterior mean value (CTR) over the draws.
        expected_loss: ``(n,)`` ``E[v(best) - v(x)]``, CTR units (>= 0).
        expected_loss_se: ``(n,)`` its Monte Carlo standard error over the S draws.
        relative_expected_loss: ``(n,)`` ``expected_loss / mean``.
        value_remaining: ``(n,)`` the ``quantile`` of ``(v(best) - v(x)) / v(x)`` (>= 0).
        p_best: ``(n,)`` share of draws in which the layout is the best.
        quantile: the quantile of the value remaining.
        best_mean: ``E[v(best)]``, the posterior mean value of each draw's best layout.
        num_draws: S.
    """

    codes: np.ndarray
    mean: np.ndarray
    expected_loss: np.ndarray
    expected_loss_se: np.ndarray
    relative_expected_loss: np.ndarray
    value_remaining: np.ndarray
    p_best: np.ndarray
    quantile: float
    best_mean: float
    num_draws: int


def per_draw_best(
    posterior: Posterior,
    space: LayoutSpace | None = None,
    *,
    segment: Mapping[str, str] | None = None,
    enumerate_limit: int = AUTO_ENUMERATE_LIMIT,
    seed: int | None = None,
    devices=None,
) -> np.ndarray:
    """``(S, K)`` codes of every draw's best allowed layout (exact; ties to the lowest index).

    Up to ``enumerate_limit`` allowed layouts (and always for the traffic mix) from one
    streamed pass of the grid engine, the pass that also gives P(best); above it from the
    exact per-draw argmax (branch and bound, ``seed`` for its restarts).

    Args:
        posterior: the fitted posterior.
        space: defaults to (and must equal) ``posterior.space``.
        segment: one segment of a space with segments; ``None`` for the traffic mix.
        enumerate_limit: the largest space enumerated.
        seed: seed of the exact argmax's restarts (needed above ``enumerate_limit``).
        devices: devices to shard over (default: all visible).

    Returns:
        ``(S, K)`` int32 codes.
    """
    space, target = scoring_target(posterior, space, segment, "draws")
    if target.rows_per_draw > 1 or space.num_allowed <= enumerate_limit:
        grid = score_grid(posterior, space, top=1, segment=segment, devices=devices)
        return np.asarray(grid.best_codes, np.int32)
    if seed is None:
        raise ValueError(
            f"the space has {space.num_allowed} allowed layouts, more than "
            f"enumerate_limit={enumerate_limit}: the per-draw best comes from the exact "
            "argmax with random restarts; pass seed="
        )
    return np.asarray(
        target.best(space, method="exact", seed=seed, what="expected_loss", devices=devices),
        np.int32,
    )


def _losses(target: Target, space: LayoutSpace, codes, best_codes, quantile: float) -> Loss:
    uniq, inverse = np.unique(best_codes, axis=0, return_inverse=True)
    S = target.num_draws
    best_v = draw_values_of_codes(target, space, uniq)[np.arange(S), inverse.reshape(-1)]
    v = draw_values_of_codes(target, space, codes).astype(np.float64)
    best_v = best_v.astype(np.float64)
    # a layout can tie the draw's best to the last bit: the loss is never negative
    loss = np.maximum(best_v[:, None] - v, 0.0)
    mean = v.mean(axis=0)
    el = loss.mean(axis=0)
    se = loss.std(axis=0, ddof=1) / np.sqrt(S) if S > 1 else np.zeros_like(el)
    rel = loss / np.maximum(v, np.finfo(np.float64).tiny)
    same = np.all(best_codes[:, None, :] == codes[None, :, :], axis=-1)
    return Loss(
        codes=codes,
        mean=mean,
        expected_loss=el,
        expected_loss_se=se,
        relative_expected_loss=el / np.maximum(mean, np.finfo(np.float64).tiny),
        value_remaining=np.quantile(rel, quantile, axis=0, method="higher"),
        p_best=same.mean(axis=0),
        quantile=quantile,
        best_mean=float(best_v.mean()),
        num_draws=S,
    )


def expected_loss(
    posterior: Posterior,
    layouts,
    space: LayoutSpace | None = None,
    *,
    segment: Mapping[str, str] | None = None,
    quantile: float = 0.95,
    best_codes: np.ndarray | None = None,
    enumerate_limit: int = AUTO_ENUMERATE_LIMIT,
    seed: int | None = None,
    devices=None,
) -> Loss:
    """Expected loss and value remaining of shipping each of ``layouts``.

    Args:
        posterior: the fitted posterior.
        layouts: ``(n, K)`` variant codes, or a list of ``{component: label}`` dicts.
        space: defaults to (and must equal) ``posterior.space``.
        segment: one segment of a space with segments; ``None`` for the traffic mix.
        quantile: the quantile of the relative loss reported as the value remaining.
        best_codes: the per-draw best (:func:`per_draw_best`) when already computed (for
            several calls on one posterior); computed here otherwise.
        enumerate_limit: the largest space enumerated for the per-draw best.
        seed: seed of the exact argmax above ``enumerate_limit``.
        devices: devices to shard over.

    Returns:
        :class:`Loss`, one entry per layout in the given order.

    Raises:
        ValueError: for a layout not in the space or forbidden, a quantile outside (0, 1),
            or a mismatched space or segment.
    """
    quantile = check_level(quantile)
    space, target = scoring_target(posterior, space, segment, "draws")
    codes = checked_codes(space, layouts)
    if best_codes is None:
        best_codes = per_draw_best(
            posterior,
            space,
            segment=segment,
            enumerate_limit=enumerate_limit,
            seed=seed,
            devices=devices,
        )
    best_codes = np.asarray(best_codes, np.int32)
    if best_codes.shape != (target.num_draws, space.num_components):
        raise ValueError(
            f"best_codes has shape {best_codes.shape}; this posterior needs "
            f"({target.num_draws}, {space.num_components}) (per_draw_best)"
        )
    return _losses(target, space, codes, best_codes, quantile)


def checked_codes(space: LayoutSpace, layouts) -> np.ndarray:
    """``(n, K)`` codes of allowed layouts given as codes or ``{component: label}`` dicts."""
    if isinstance(layouts, Mapping):
        layouts = [layouts]
    items = list(layouts) if not isinstance(layouts, np.ndarray) else layouts
    if len(items) and isinstance(items[0], Mapping):
        codes = np.asarray([space.encode(x) for x in items], np.int32)
    else:
        codes = np.asarray(items, np.int32).reshape(-1, space.num_components)
        bad = (codes < 0) | (codes >= np.asarray(space.cardinalities))
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(
                f"layout {codes[row].tolist()} is outside the space (cardinalities "
                f"{list(space.cardinalities)})"
            )
    ok = space.allowed_mask(codes)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"layout {space.decode(codes[row])} is forbidden by the space's rules")
    return codes
