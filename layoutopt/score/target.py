"""What a pass over the space scores: the draws of one parameter set, or the traffic mix.

The grid engine streams rows of ordinary parameters and knows nothing of segments. This
module turns a posterior and a ``segment`` into a :class:`Target`, the one description every
pass reads (scoring, Parquet output, shards, P(best) for proposals):

* **One segment** ``g`` (or a space without segments): its terms fold into ordinary
  parameters (:func:`layoutopt.model.fold_segment`: ``b0 + c[g]``, ``m_k + d_k[g]``), so the
  S draws are streamed as they are and the reductions see eta.
* **The traffic mix** (``segment=None`` on a posterior with segment terms): the one layout
  best for everyone maximises the CTR averaged over segments with the observed impression
  shares ``w_g``::

      ctr_s(x) = sum_g w_g inv_link(eta_s(x, g))

  It is not an eta of one parameter set, but the engine computes the eta of every (draw,
  segment) pair at once when the segment-folded parameters are stacked along the draw axis
  (G x S rows, segment-major), and a transform of each block (:func:`mixture`: ``(G * S, C)``
  eta to the ``(S, C)`` mixture CTR) feeds the same per-draw argmax, top-k, mean and
  order-statistic reductions (:func:`layoutopt.score.reductions.transformed`, link
  :data:`~layoutopt.score.reductions.IDENTITY`). So the mix streams and shards like every
  other pass, with memory O(G x S x chunk) whatever the size of the space. Its mean and
  interval always come from the draws (there is no closed form for a mixture).
* **An objective over several metrics** (an :class:`~layoutopt.score.objective.
  ObjectivePosterior`): the metrics' rows (each metric's draws, or its G segment-folded rows
  for the mix) are stacked the same way, the block transform is the weighted value
  (:func:`~layoutopt.score.objective.objective_values`) and the guardrails' verdict
  (:func:`~layoutopt.score.objective.guardrail_admits`) marks the layouts that fail one as
  not allowed, so every reduction skips them (:func:`objective_target`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.infer.posterior import GaussianPosterior, Posterior
from layoutopt.model.core import Params, fold_segment, has_segments, inv_link
from layoutopt.model.space import LayoutSpace
from layoutopt.score.grid import (
    DEFAULT_GRID,
    IDENTITY,
    ArgmaxState,
    GridOptions,
    Reduction,
    as_params,
    check_params,
    codes_eta,
    leaf_codes,
    leaf_table,
    per_draw_argmax,
    per_draw_max,
    plan,
    resolve_argmax,
    scan_grid,
    transformed,
)
from layoutopt.score.objective import (
    ObjectiveAux,
    ObjectivePosterior,
    draws_needed,
    guardrail_admits,
    guardrail_rates,
    objective_values,
)
from layoutopt.score.optimize import argmax_codes, check_argmax_work
from layoutopt.util.limits import check_grid_work

__all__ = [
    "SCORING_METHODS",
    "Target",
    "check_level",
    "draws_target",
    "mix_target",
    "mixture",
    "objective_target",
    "same",
    "scoring_target",
    "segment_shares",
    "segment_view",
    "value_target",
]

#: Ways to compute mean and interval (``method=``); P(best) always comes from the draws.
SCORING_METHODS = ("auto", "gaussian", "draws")


class Target(NamedTuple):
    """What one pass scores, read the same way by every pass.

    Attributes:
        params: float32 :class:`~layoutopt.model.Params` the engine streams, R rows on the
            leading axis: the S draws, or the G x S segment-folded rows of the mix.
        link: the link the reductions apply to the values (``IDENTITY`` for the mix, whose
            values are CTRs already).
        num_draws: S.
        values: static ``(eta (R, C), aux) -> (S, C)``: what the reductions see of a
            block's eta.
        rows_per_draw: R / S.
        argmax: the per-draw max reduction of the streamed pass.
        resolve: ``resolve(params, space, state, options) -> ArgmaxState``: its argmax.
        best: ``best(space, *, method, seed, what, chunk_size, devices) -> (S, K)`` codes:
            the per-draw best layout of the whole space (the optimiser for one parameter
            set; an enumeration for the mix).
        gauss: the Laplace Gaussian of the closed form (segment folded in), or None (the
            draws).
        fingerprint: arrays beyond ``params`` that the scores depend on (the mix's shares).
        aux: the traced operands ``values`` reads (the mix's float32 shares; ``()``), passed
            to every pass as ``scan_grid(aux=...)``: new shares reuse the compiled pass.
        admits: static ``(eta (R, C), aux) -> (C,)`` bool or None: the layouts a pass may
            count (an objective's guardrails); the others are treated as forbidden.
    """

    params: Params
    link: str
    num_draws: int
    values: Callable[[jax.Array], jax.Array]
    rows_per_draw: int
    argmax: Reduction
    resolve: Callable[..., ArgmaxState]
    best: Callable[..., np.ndarray]
    gauss: GaussianPosterior | None
    fingerprint: tuple = ()
    aux: Any = ()
    admits: Callable[[jax.Array, Any], jax.Array] | None = None

    def wrap(self, reduction: Reduction) -> Reduction:
        """``reduction`` over this target's values (see :func:`transformed`)."""
        return transformed(reduction, self.values, self.rows_per_draw, self.admits)


def same(eta: jax.Array, aux: Any = ()) -> jax.Array:
    """The values of one parameter set's block: its eta (``aux`` unused)."""
    return eta


def segment_view(posterior: Posterior, segment: Mapping[str, str] | None) -> tuple[Posterior, bool]:
    """The posterior to score for ``segment``, and whether the traffic mix is asked for.

    Args:
        posterior: a fitted posterior.
        segment: ``{context variable: value}``, or ``None``.

    Returns:
        ``(posterior, mix)``: for a segment, a posterior whose draws have that segment folded
        in (no segment terms left) and ``mix=False``; for ``None`` on a posterior with
        segment terms, the posterior unchanged and ``mix=True``; otherwise unchanged and
        ``False``.

    An :class:`~layoutopt.score.objective.ObjectivePosterior` comes back with the segment
    folded into every metric and ``mix=True``: its value is no eta of one parameter set, so
    it is maximised by enumeration, as the mix is.

    Raises:
        ValueError: for a segment on a space without segments, or an unknown variable/value.
    """
    if isinstance(posterior, ObjectivePosterior):
        return posterior.map(lambda p: segment_view(p, segment)[0]), True
    if not isinstance(posterior, Posterior):
        raise ValueError(f"expected a Posterior, got {type(posterior).__name__}")
    if segment is None:
        return posterior, has_segments(posterior.params)
    code = posterior.space.segment_code(segment)
    if not has_segments(posterior.params):
        raise ValueError(
            "the posterior has no segment terms (it was fitted without segments); "
            "refit on data with segment columns"
        )
    gauss = posterior.gaussian
    folded = dataclasses.replace(
        posterior,
        params=fold_segment(posterior.params, code),
        gaussian=None if gauss is None else gauss.fold(code),
    )
    return folded, False


def segment_shares(posterior: Posterior) -> np.ndarray:
    """``(G,)`` observed impression share of each segment (uniform when none was recorded)."""
    G = posterior.space.num_segments
    w = posterior.segment_shares
    if w is None:
        return np.full(G, 1.0 / G)
    return np.asarray(w, np.float64)


@functools.cache
def mixture(link: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The block transform of the traffic mix: ``(G * S, C)`` eta -> ``(S, C)`` mixture CTR.

    ``sum_g w_g inv_link(eta[g * S + s])`` in float32, the rows segment-major as
    :func:`mix_target` stacks them; the shares ``w`` (G,) are the transform's traced second
    argument (a :class:`Target`'s ``aux``), so a campaign whose traffic shares move every
    round compiles its passes once.

    Args:
        link: the posterior's link.

    Returns:
        The transform ``values(eta, w)`` (cached: one function, one compilation, per link).
    """

    def values(eta, w):
        G = w.shape[0]
        ctr = inv_link(eta.reshape((G, eta.shape[0] // G) + eta.shape[1:]), link)
        return jnp.sum(w.astype(jnp.float32).reshape((G,) + (1,) * (eta.ndim)) * ctr, axis=0)

    return values


def gaussian_batch(posterior: Posterior, method: str) -> GaussianPosterior | None:
    """The Laplace Gaussian to score in closed form, or None for the draws.

    ``"auto"`` uses the Gaussian when the posterior carries one (Laplace fits): exact
    under the Laplace approximation, no Monte Carlo error, and no sort; ``"gaussian"``
    insists on it; ``"draws"`` always uses the draws (the empirical mean and quantiles).
    How a pass streams it (the r factor rows, or the covariance tables) is
    :func:`layoutopt.score.covariance.closed_form`'s choice.
    """
    check_method(method)
    gauss = posterior.gaussian
    if method == "draws" or (method == "auto" and gauss is None):
        return None
    if gauss is None:
        raise ValueError(
            f"method='gaussian' needs a Laplace posterior; this one is a {posterior.method} "
            "fit without a Gaussian: use method='draws' or 'auto'"
        )
    return gauss


def check_method(method: str) -> str:
    """Raise a ValueError unless ``method`` is one of :data:`SCORING_METHODS`."""
    if method not in SCORING_METHODS:
        raise ValueError(f"method={method!r} is not valid; valid: {SCORING_METHODS}")
    return method


def check_level(level: float) -> float:
    """``level`` as a float in (0, 1), or a ValueError."""
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(level)


def _optimizer_best(params, space, *, method, seed, what, chunk_size=None, devices=None):
    check_argmax_work(params, space, method, seed, what)
    return np.asarray(
        argmax_codes(
            params, space, method=method, seed=seed, chunk_size=chunk_size, devices=devices
        )
    )


def draws_target(posterior: Posterior, space: LayoutSpace, method: str = "auto") -> Target:
    """The :class:`Target` of a posterior without segment terms (or with one folded in)."""
    params = as_params(posterior.params)
    check_params(params, space)
    return Target(
        params=params,
        link=posterior.prior.link,
        num_draws=int(params.intercept.shape[0]),
        values=same,
        rows_per_draw=1,
        argmax=per_draw_max(),
        resolve=resolve_argmax,
        best=functools.partial(_optimizer_best, params),
        gauss=gaussian_batch(posterior, method),
    )


def _keep_argmax(params, space, state, options: GridOptions = DEFAULT_GRID) -> ArgmaxState:
    return state


def _enumerated_best(target_rows, space, *, method, seed, what, chunk_size=None, devices=None):
    """Per-draw argmax of the mixture CTR (or an objective's value) by one engine pass
    (exact; method/seed unused)."""
    params, values, G, aux, admits = target_rows
    S = int(params.intercept.shape[0]) // G
    check_grid_work(space.num_allowed, S * G, what, "pass segment={...} to use the exact optimiser")
    state = scan_grid(
        params,
        space,
        transformed(per_draw_argmax(), values, G, admits),
        chunk_size=chunk_size,
        devices=devices,
        aux=aux,
    )
    return np.asarray(state.best_codes)


def mix_target(posterior: Posterior, space: LayoutSpace) -> Target:
    """The :class:`Target` of the traffic mix of a posterior with segment terms.

    Args:
        posterior: a posterior with segment terms.
        space: the space to stream (the posterior's, or one with extra forbidden rules).

    Returns:
        A target of G x S segment-folded rows whose values are the mixture CTR.
    """
    params = as_params(posterior.params)
    check_params(params, space)
    G = space.num_segments
    shares = segment_shares(posterior)
    rows = [fold_segment(params, g) for g in range(G)]
    stacked = jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *rows)
    values = mixture(posterior.prior.link)
    aux = jnp.asarray(shares, jnp.float32)
    return Target(
        params=stacked,
        link=IDENTITY,
        num_draws=int(params.intercept.shape[0]),
        values=values,
        rows_per_draw=G,
        argmax=per_draw_argmax(),
        resolve=_keep_argmax,
        best=functools.partial(_enumerated_best, (stacked, values, G, aux, None)),
        gauss=None,
        fingerprint=(shares,),
        aux=aux,
    )


def _metric_rows(posterior: Posterior, space: LayoutSpace):
    """``(rows, shares)``: one metric's float32 rows (its G segment-folded row sets for the
    traffic mix, else its draws) and the weight of each row set in the metric's rate."""
    params = as_params(posterior.params)
    check_params(params, space)
    if not has_segments(params):
        return [params], np.ones(1)
    return [fold_segment(params, g) for g in range(space.num_segments)], segment_shares(posterior)


def objective_target(vp: ObjectivePosterior, space: LayoutSpace) -> Target:
    """The :class:`Target` of an objective over several metrics, under its guardrails.

    Rows: for each metric the objective or a guardrail reads, its draws (or its G
    segment-folded row sets, for the traffic mix), stacked group-major (NG groups of S
    rows). Values: ``sum_g value_w[g] inv_link(eta_g)`` per draw. The control's per-draw
    guarded rates are computed here once (the kernel's own arithmetic), so a pass only
    compares.

    Args:
        vp: the metrics, objective, guardrails and control (segments already folded by
            :func:`segment_view` when one segment is scored).
        space: the space to stream (the posterior's, or one with extra forbidden rules).

    Returns:
        A target with link :data:`~layoutopt.score.reductions.IDENTITY` whose values are the
        objective's value per impression and whose ``admits`` are the guardrails.
    """
    link, S = vp.link, vp.num_draws
    rows, where = [], {}
    for m in vp.metric_names:
        r, shares = _metric_rows(vp.posterior(m), space)
        where[m] = (len(rows), np.asarray(shares, np.float64))
        rows += r
    NG = len(rows)
    value_w = np.zeros(NG)
    for m, w in vp.objective.weights:
        start, shares = where[m]
        value_w[start : start + len(shares)] = w * shares
    guard_w = np.zeros((len(vp.guardrails), NG))
    for i, g in enumerate(vp.guardrails):
        start, shares = where[g.metric]
        guard_w[i, start : start + len(shares)] = shares
    stacked = jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *rows)
    limit = np.zeros((len(vp.guardrails), S))
    if vp.guardrails:
        pl = plan(space.cardinalities)
        eta = codes_eta(
            stacked, jnp.asarray(vp.control[None]), leaf_table(stacked, pl, leaf_codes(pl)), pl
        )
        probe = ObjectiveAux(jnp.zeros(NG), jnp.asarray(guard_w, jnp.float32), None, None)
        control = np.asarray(guardrail_rates(eta, probe, link))[:, :, 0]  # (Ng, S)
        factor = np.asarray([1.0 + g.max_relative_increase for g in vp.guardrails])
        limit = factor[:, None] * control
    aux = ObjectiveAux(
        jnp.asarray(value_w, jnp.float32),
        jnp.asarray(guard_w, jnp.float32),
        jnp.asarray(limit, jnp.float32),
        jnp.asarray([draws_needed(g.probability, S) for g in vp.guardrails], jnp.int32),
    )
    values = objective_values(link)
    admits = guardrail_admits(link) if vp.guardrails else None
    return Target(
        params=stacked,
        link=IDENTITY,
        num_draws=S,
        values=values,
        rows_per_draw=NG,
        argmax=per_draw_argmax(),
        resolve=_keep_argmax,
        best=functools.partial(_enumerated_best, (stacked, values, NG, aux, admits)),
        gauss=None,
        fingerprint=tuple(np.asarray(a) for a in aux),
        aux=aux,
        admits=admits,
    )


def value_target(posterior, space: LayoutSpace) -> Target:
    """The target whose value has no single eta, on ``space`` (a segment already folded):
    an objective's (:func:`objective_target`) or the traffic mix's (:func:`mix_target`)."""
    if isinstance(posterior, ObjectivePosterior):
        return objective_target(posterior, space)
    return mix_target(posterior, space)


def scoring_target(
    posterior: Posterior,
    space: LayoutSpace | None,
    segment: Mapping[str, str] | None = None,
    method: str = "auto",
) -> tuple[LayoutSpace, Target]:
    """Check a posterior and space and build what to score for ``segment``.

    Args:
        posterior: the fitted posterior.
        space: defaults to (and must equal) ``posterior.space``.
        segment: one segment, or ``None`` for the traffic mix (on a posterior with segments).
        method: ``"auto"``, ``"gaussian"`` or ``"draws"`` (the mix always uses the draws).

    Returns:
        ``(space, target)``.

    Raises:
        ValueError: for a mismatched space, a non-finite posterior, a bad segment or method.
    """
    posterior, mix = segment_view(posterior, segment)
    space = posterior.space if space is None else space
    if space != posterior.space:
        raise ValueError(
            f"space {space!r} differs from the space the posterior was fitted on "
            f"{posterior.space!r}"
        )
    posterior.check_finite()
    if mix:
        check_method(method)
        return space, value_target(posterior, space)
    return space, draws_target(posterior, space, method)
