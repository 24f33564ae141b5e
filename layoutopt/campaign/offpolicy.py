"""Off-policy evaluation of another allocation from a campaign's logged rows.

The target is an allocation document (``allocation.json`` as
:meth:`~layoutopt.Campaign.allocation` writes it, or one edited by hand: ``layouts`` with
component labels, ``weight`` and, on a per-segment allocation, the segment values). Each
logged row (ingested with a ``propensity`` column, :mod:`layoutopt.campaign.logged`) gets
the target's probability of its layout (in its segment) and the model's CTR of it (the
campaign's latest fit, posterior mean), and :func:`layoutopt.campaign.evaluate.evaluate_policy`
gives IPS, self-normalised IPS and doubly robust estimates with bootstrap intervals. The
slate estimator needs a log randomised per component, which a campaign's allocations are
not; it is not offered here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from layoutopt.campaign.evaluate import Estimate, LoggedRows, evaluate_policy
from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.scoring import score_layouts

__all__ = ["read_allocation", "target_probabilities", "evaluate_allocation"]


def read_allocation(source: str | Path | dict) -> dict[str, Any]:
    """An allocation document from a dict or a JSON file.

    Raises:
        ValueError: for a missing or unreadable file or no ``layouts`` list.
    """
    if isinstance(source, dict):
        doc, name = source, "allocation"
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            doc = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a JSON allocation ({err})") from None
        name = str(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("layouts"), list) or not doc["layouts"]:
        raise ValueError(f"{name}: an allocation needs a non-empty 'layouts' list")
    return doc


def target_probabilities(space: LayoutSpace, doc: dict) -> dict[tuple, dict[int, float]]:
    """``{segment key: {layout index: probability}}`` of an allocation document; the key is
    None when its layouts carry no segment values (one allocation for all traffic).

    Raises:
        ValueError: for a layout with a missing or unknown label, or a bad weight.
    """
    names = list(space.segment_names)
    out: dict[tuple, dict[int, float]] = {}
    for n, lay in enumerate(doc["layouts"]):
        missing = [c for c in space.components if c not in lay]
        if missing:
            raise ValueError(f"allocation: layout {n + 1} has no label for {missing}")
        w = lay.get("weight")
        if not isinstance(w, int | float) or not np.isfinite(w) or w < 0:
            raise ValueError(f"allocation: layout {n + 1} has weight {w!r}; need a number >= 0")
        index = space.index({c: str(lay[c]) for c in space.components})
        key = tuple(sorted((s, str(lay[s])) for s in names)) if names and names[0] in lay else None
        cell = out.setdefault(key, {})
        cell[index] = cell.get(index, 0.0) + float(w)
    for key, cell in out.items():
        total = sum(cell.values())
        if total <= 0:
            raise ValueError(f"allocation: the weights of {key or 'all traffic'} sum to 0")
        out[key] = {i: w / total for i, w in cell.items()}
    return out


def evaluate_allocation(
    space: LayoutSpace,
    logged: pd.DataFrame,
    doc: dict,
    posterior: Posterior | None,
    *,
    level: float = 0.9,
    num_bootstrap: int = 1000,
    seed: int,
) -> list[Estimate]:
    """IPS, SNIPS and (with a posterior) doubly robust estimates of an allocation's CTR.

    Args:
        space: the campaign's current space.
        logged: :func:`layoutopt.campaign.logged.logged_frame` rows.
        doc: the target allocation document.
        posterior: the model for doubly robust (its posterior mean CTR), or None.
        level: level of the bootstrap intervals.
        num_bootstrap: bootstrap replicates.
        seed: seed of the bootstrap.

    Raises:
        ValueError: when no logged row has a propensity, or for a bad allocation.
    """
    rows = logged[logged["propensity"].notna()].reset_index(drop=True)
    if rows.empty:
        raise ValueError(
            "off-policy evaluation needs ingested rows with a 'propensity' column (as "
            "`campaign assign` writes it); none were ingested"
        )
    target = target_probabilities(space, doc)
    keys = [None if s is None else tuple(sorted(s.items())) for s in rows["segment"]]

    def pi_of(key) -> dict[int, float]:
        return target[None] if None in target else target.get(key, {})

    pi = np.array([pi_of(k).get(int(i), 0.0) for k, i in zip(keys, rows["index"], strict=True)])
    model = model_value = None
    if posterior is not None:
        model = np.zeros(len(rows))
        model_value = 0.0
        n = rows["impressions"].to_numpy(np.float64)
        for key in dict.fromkeys(keys):
            segment = None if key is None else dict(key)
            mask = np.array([k == key for k in keys])
            layouts = sorted(set(rows.loc[mask, "index"].astype(int)) | set(pi_of(key)))
            labels = [space.layout(i) for i in layouts]
            q = score_layouts(posterior, labels, level=level, seed=seed, segment=segment)
            ctr = dict(zip(layouts, q["mean"].to_numpy(np.float64), strict=True))
            model[mask] = [ctr[int(i)] for i in rows.loc[mask, "index"]]
            value = sum(p * ctr[i] for i, p in pi_of(key).items())
            model_value += value * n[mask].sum() / n.sum()  # segments in their logged shares
    logged_rows = LoggedRows(
        rows["impressions"].to_numpy(np.float64),
        rows["clicks"].to_numpy(np.float64),
        rows["propensity"].to_numpy(np.float64),
        pi,
        model,
        model_value,
    )
    return evaluate_policy(logged_rows, level=level, num_bootstrap=num_bootstrap, seed=seed)
