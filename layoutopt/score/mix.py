"""Scoring for audiences: one segment at a time, or the traffic mix of all of them.

A space with segments (context variables such as ``member = prime | non_prime``) has a
click-through rate per (layout, segment)::

    ctr_s(x, g) = inv_link(eta_s(x, g))          (draw s, segment g; eta from model.logits)

* **One segment** ``g``: its terms fold into ordinary parameters
  (:func:`layoutopt.model.fold_segment`: ``b0 + c[g]``, ``m_k + d_k[g]``), so the grid
  engine, the optimiser and the proposals score it with no change at all.
* **The traffic mix** (``segment=None``): the one layout best for everyone maximises the
  CTR averaged over segments with the observed impression shares ``w_g``::

      ctr_s(x) = sum_g w_g ctr_s(x, g)

  mean, interval and P(best) then refer to this mixture per draw. The mixture is not an
  eta of one parameter set, so it is scored here by enumerating the allowed layouts in
  chunks (memory O(S x chunk x G)), for spaces up to ``MAX_MIX_LAYOUTS`` allowed layouts.

:func:`best_by_segment` tabulates the best layout of every segment with its interval and
P(best), next to the one pick for the whole mix.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import fold_segment, has_segments, inv_link, logits
from layoutopt.model.space import LayoutSpace

__all__ = [
    "MAX_MIX_LAYOUTS",
    "segment_view",
    "scan_mix",
    "mix_stats",
    "mix_p_best",
    "segment_shares",
]

#: Largest number of allowed layouts scored for the traffic mix (``segment=None``).
MAX_MIX_LAYOUTS = 2**20
#: Bytes of (draw x layout x segment) floats one chunk of the mixture may hold.
_MIX_BUDGET = 64 * 2**20


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

    Raises:
        ValueError: for a segment on a space without segments, or an unknown variable/value.
    """
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
    G = posterior.space.num_segments
    w = posterior.segment_shares
    if w is None:
        return np.full(G, 1.0 / G)
    return np.asarray(w, np.float64)


@functools.partial(jax.jit, static_argnames=("link",))
def _mix_ctr(params, codes, shares, *, link):
    """Per-draw mixture CTR ``(S, n)`` = sum_g w_g inv_link(logits(params_s, x, g))."""

    def one_draw(p):
        def one_segment(g, w):
            seg = jnp.full(codes.shape[:1], g, jnp.int32)
            return w * inv_link(logits(p, codes, seg), link)

        G = shares.shape[0]
        return jnp.sum(jax.vmap(one_segment)(jnp.arange(G), shares), axis=0)

    return jax.vmap(one_draw)(params)


def _as_f32(params):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)


def mix_ctr_draws(posterior: Posterior, codes: np.ndarray) -> np.ndarray:
    """``(S, n)`` per-draw mixture CTR of explicit layouts (chunked, padded)."""
    params = _as_f32(posterior.params)
    shares = jnp.asarray(segment_shares(posterior), jnp.float32)
    S, G = posterior.num_draws, posterior.space.num_segments
    chunk = _chunk(S, G)
    out = []
    for start in range(0, len(codes), chunk):
        c = codes[start : start + chunk]
        pad = np.zeros((chunk, codes.shape[1]), np.int32)
        pad[: len(c)] = c
        out.append(np.asarray(_mix_ctr(params, jnp.asarray(pad), shares, link=_link(posterior))))
        out[-1] = out[-1][:, : len(c)]
    if not out:
        return np.zeros((S, 0), np.float32)
    return np.concatenate(out, axis=1)


def _link(posterior: Posterior) -> str:
    return posterior.prior.link


def _chunk(S: int, G: int) -> int:
    n = max(64, _MIX_BUDGET // (4 * S * max(G, 1) * 3))
    return 1 << (n.bit_length() - 1)


def _check_mix_size(space: LayoutSpace) -> None:
    if space.num_allowed > MAX_MIX_LAYOUTS:
        raise ValueError(
            f"scoring the traffic mix (segment=None) enumerates the space, limited to "
            f"MAX_MIX_LAYOUTS={MAX_MIX_LAYOUTS} allowed layouts; this space has "
            f"{space.num_allowed}. Pass segment={{...}} to score one segment"
        )


class MixScan(NamedTuple):
    """Result of one pass over the allowed layouts under the traffic mix.

    Attributes:
        codes: ``(n, K)`` codes of every allowed layout, in index order.
        mean: ``(n,)`` posterior mean mixture CTR.
        lower: ``(n,)`` lower end of the equal-tailed ``level`` interval of the mixture CTR.
        upper: ``(n,)`` upper end.
        best_codes: ``(S, K)`` per-draw argmax of the mixture CTR (ties: lowest index).
    """

    codes: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    best_codes: np.ndarray


def scan_mix(posterior: Posterior, space: LayoutSpace, level: float) -> MixScan:
    """Score every allowed layout under the traffic mix (see the module docstring).

    Args:
        posterior: a posterior with segment terms.
        space: the space to enumerate (the posterior's, or one with extra forbidden rules).
        level: credible level of the interval.

    Returns:
        :class:`MixScan`.

    Raises:
        ValueError: above ``MAX_MIX_LAYOUTS`` allowed layouts.
    """
    _check_mix_size(space)
    S = posterior.num_draws
    chunk = _chunk(S, space.num_segments)
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    codes_all, mean, lower, upper = [], [], [], []
    best_val = np.full(S, -np.inf)
    best_codes = np.zeros((S, space.num_components), np.int32)
    for _, codes in space.iter_chunks(chunk, allowed_only=True):
        if len(codes) == 0:
            continue
        ctr = mix_ctr_draws(posterior, codes)  # (S, n)
        j = np.argmax(ctr, axis=1)  # first maximum: the lowest index within the chunk
        val = ctr[np.arange(S), j]
        better = val > best_val  # strict: earlier chunks (lower indices) win ties
        best_val = np.where(better, val, best_val)
        best_codes[better] = codes[j[better]]
        codes_all.append(codes)
        mean.append(ctr.mean(axis=0))
        lo, hi = np.quantile(ctr.astype(np.float64), q, axis=0)
        lower.append(lo)
        upper.append(hi)
    return MixScan(
        np.concatenate(codes_all),
        np.concatenate(mean).astype(np.float64),
        np.concatenate(lower),
        np.concatenate(upper),
        best_codes,
    )


def mix_stats(posterior: Posterior, codes: np.ndarray, level: float):
    """``(mean, lower, upper)`` of the mixture CTR of explicit layouts."""
    ctr = mix_ctr_draws(posterior, np.asarray(codes, np.int32)).astype(np.float64)
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    lo, hi = np.quantile(ctr, q, axis=0) if ctr.shape[1] else (np.zeros(0), np.zeros(0))
    return ctr.mean(axis=0), lo, hi


def mix_p_best(posterior: Posterior, space: LayoutSpace) -> tuple[np.ndarray, np.ndarray]:
    """Distinct per-draw argmax layouts of the mixture CTR and the share of draws of each."""
    best = scan_mix(posterior, space, level=0.9).best_codes
    codes, counts = np.unique(best, axis=0, return_counts=True)
    return codes.astype(np.int32), counts / posterior.num_draws
