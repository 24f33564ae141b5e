"""The bins of a click-delay histogram, without the numerics of the delay models.

Reading stored data (``campaign status``, ``campaign export``) checks histograms against
these edges; keeping them apart from :mod:`layoutopt.model.delay` lets it do so without
importing JAX.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DELAY_EDGES"]

# Delay histogram edges in hours: 0, then 1 minute to one year in 60 geometric steps (each
# bin ~25% wider than the last), then infinity. Fine where delays are short, coarse where
# a few minutes no longer matter.
DELAY_EDGES = np.concatenate([[0.0], np.geomspace(1.0 / 60.0, 24.0 * 365.0, 60), [np.inf]])
