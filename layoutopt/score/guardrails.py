"""Which layouts the guardrails exclude, and why: per-layout probabilities and a count.

The guardrails themselves act inside every pass (:func:`layoutopt.score.objective.
guardrail_admits`); this module answers the designer's question about them:
:func:`guardrail_report` gives, for given layouts, each guardrail's posterior probability
and the verdict, and :func:`count_excluded` counts the layouts of the whole space that fail
one, streamed through the grid engine (memory flat in the size of the space).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from layoutopt.score import grid as engine
from layoutopt.score.loss import checked_codes
from layoutopt.score.objective import ObjectivePosterior, guardrail_counts
from layoutopt.score.scoring import BestLayout, best_layout
from layoutopt.score.target import IDENTITY, scoring_target
from layoutopt.util.arrays import pow2_at_least
from layoutopt.util.limits import check_grid_work

__all__ = ["count_excluded", "exclusion_note", "guardrail_report"]

_CHUNK = 1024


@functools.partial(jax.jit, static_argnames=("link", "plan", "values"))
def _of_codes(params, table, codes, aux, *, link, plan, values):
    eta = engine.codes_eta(params, codes, table, plan)
    return jnp.mean(values(eta, aux), axis=0), guardrail_counts(eta, aux, link)


def _check(vp) -> ObjectivePosterior:
    if not isinstance(vp, ObjectivePosterior):
        raise ValueError(f"expected an ObjectivePosterior, got {type(vp).__name__}")
    return vp


def guardrail_report(
    vp: ObjectivePosterior, layouts, *, segment: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Each guardrail's probability and verdict for ``layouts``.

    Args:
        vp: the metrics, objective, guardrails and control.
        layouts: ``(n, K)`` codes or ``{component: label}`` dicts.
        segment: one segment; ``None`` for the traffic mix (or a space without segments).

    Returns:
        One row per layout, in the given order: ``index``, the labels, ``value`` (posterior
        mean value per impression), for each guardrail ``p_<metric>`` (the posterior
        probability that its rate is within the limit), ``passes`` and ``excluded_by``
        (the failed guardrails in words, ``""`` when it passes).

    Raises:
        ValueError: for a layout outside the space or forbidden, or a bad segment.
    """
    space, target = scoring_target(_check(vp), None, segment, "draws")
    codes = checked_codes(space, layouts)
    pl = engine.plan(space.cardinalities)
    table = engine.leaf_table(target.params, pl, engine.leaf_codes(pl))
    chunk = pow2_at_least(max(1, min(len(codes), _CHUNK)))
    values, probs = [], []
    for s in range(0, len(codes), chunk):
        pad = np.zeros((chunk, space.num_components), np.int32)
        part = codes[s : s + chunk]
        pad[: len(part)] = part
        v, p = _of_codes(
            target.params,
            table,
            jnp.asarray(pad),
            target.aux,
            link=vp.link,
            plan=pl,
            values=target.values,
        )
        values.append(np.asarray(v)[: len(part)])
        probs.append(np.asarray(p)[:, : len(part)])
    G = len(vp.guardrails)
    value = np.concatenate(values) if values else np.zeros(0)
    count = np.concatenate(probs, axis=1) if probs else np.zeros((G, 0), np.int32)
    need = np.asarray(target.aux.guard_need)
    prob = count / target.num_draws
    df = space.frame(codes)
    df["value"] = value.astype(np.float64)
    failed = []
    for i, g in enumerate(vp.guardrails):
        df[f"p_{g.metric}"] = prob[i].astype(np.float64)
        fails = count[i] < need[i]
        failed.append([g.fails(float(p)) if f else "" for p, f in zip(prob[i], fails, strict=True)])
    why = ["; ".join(x for x in row if x) for row in zip(*failed, strict=True)] if G else []
    df["passes"] = [not w for w in why] if G else True
    df["excluded_by"] = why if G else ""
    return df


def count_excluded(vp: ObjectivePosterior, *, segment: Mapping[str, str] | None = None) -> int:
    """How many allowed layouts of the space fail a guardrail (one streamed pass).

    Raises:
        ValueError: for a bad segment, or a pass beyond ``limits.MAX_GRID_WORK``.
    """
    space, target = scoring_target(_check(vp), None, segment, "draws")
    if not vp.guardrails:
        return 0
    check_grid_work(
        space.num_allowed,
        target.num_draws * target.rows_per_draw,
        "counting the layouts a guardrail excludes",
        "fit with fewer draws (num_samples=)",
    )
    kept = [0]

    def count(first, n, out):
        kept[0] += int(np.isfinite(np.asarray(out).reshape(-1)[:n]).sum())

    engine.scan_grid(
        target.params,
        space,
        target.wrap(engine.mean_ctr(IDENTITY)),
        on_chunk=count,
        aux=target.aux,
    )
    return space.num_allowed - kept[0]


def exclusion_note(
    posterior, leader: BestLayout, *, segment: Mapping[str, str] | None = None, seed=None
) -> str:
    """What the guardrails exclude, in words, for a decision on ``leader``.

    ``""`` for a plain posterior or an objective without guardrails. Otherwise how many
    layouts fail a guardrail and, when the best layout without guardrails is another than
    ``leader``, which one it is and the guardrail it fails, with its probability.
    """
    if not isinstance(posterior, ObjectivePosterior) or not posterior.guardrails:
        return ""
    n = count_excluded(posterior, segment=segment)
    note = f"guardrails exclude {n:,} of {posterior.space.num_allowed:,} layouts"
    free = posterior.with_settings(guardrails=None, control=None)
    top = best_layout(free, segment=segment, seed=seed)
    if top.index != leader.index:
        row = guardrail_report(posterior, [top.layout], segment=segment).iloc[0]
        note += f"; the best without them, layout {top.index}, fails {row['excluded_by']}"
    return note
