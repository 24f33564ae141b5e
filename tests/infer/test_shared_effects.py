"""Shared item effects across distinct slots (``shared_effects=True``), fitted by Laplace."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo

ITEMS = [f"i{j}" for j in range(6)]
EFFECTS = np.array([1.0, 0.3, 0.0, 0.0, -0.3, -0.5])  # the same in every slot


def results(seed: int = 0) -> pd.DataFrame:
    """Every layout without repeats in which item i0 is only ever shown in slot s1."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b, c in itertools.permutations(range(len(ITEMS)), 3):
        if b and c:
            eta = -3.0 + EFFECTS[a] + EFFECTS[b] + EFFECTS[c]
            p = 1.0 / (1.0 + np.exp(-eta))
            rows.append((ITEMS[a], ITEMS[b], ITEMS[c], 300, rng.binomial(300, p)))
    return pd.DataFrame(rows, columns=["s1", "s2", "s3", "impressions", "clicks"])


def slot2_effect_of_i0(shared: bool) -> tuple[float, float]:
    space = lo.LayoutSpace(
        {"s1": ITEMS, "s2": ITEMS, "s3": ITEMS},
        distinct=[("s1", "s2", "s3")],
        shared_effects=shared,
    )
    obs = lo.Observations.from_frame(results(), space)
    post = lo.fit(space, obs, prior=lo.PriorConfig(pairwise=False), seed=0, num_samples=400)
    main = np.asarray(post.params.main[1], np.float64)
    centred = main - main.mean(axis=1, keepdims=True)  # the intercept absorbs the level
    return float(centred[:, 0].mean()), float(centred[:, 0].std())


@pytest.mark.slow  # two models, two compilations of the Laplace kernel (~18 s on 2 busy cores)
def test_an_item_seen_in_one_slot_informs_the_others():
    # i0 is never shown in s2: alone, s2 knows nothing of it (prior mean, near 0); shared,
    # s2 borrows what s1 learnt (true centred effect 1.0 - mean(EFFECTS) = 0.917; measured
    # 0.89, sd 0.05). The tolerances are 3 posterior sd (the Monte Carlo error of the mean
    # of 400 draws is sd/20, negligible); the fits are seeded.
    alone, alone_sd = slot2_effect_of_i0(shared=False)
    shared, shared_sd = slot2_effect_of_i0(shared=True)
    assert abs(alone) < 3 * alone_sd and abs(alone) < 0.2
    truth = EFFECTS[0] - EFFECTS.mean()
    assert abs(shared - truth) < 3 * shared_sd and shared > 0.6
