"""Write the README's segments example data: ``results.csv`` for ``segments_space.toml``.

A world where prime members prefer the "Members save" headline and non-members "Try it
free" (70% / 30% of the traffic); every layout of the pairwise initial design is served
7,000 times to prime members and 3,000 times to the others.

Usage::

    python docs/segments_example.py results.csv
    layoutopt fit -s layoutopt/examples/segments_space.toml -d results.csv -o post.nc --seed 0
    layoutopt best -p post.nc --by-segment
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import layoutopt as lo
from layoutopt.model.core import Params, pair_list
from layoutopt.sim.segments import SegmentWorld

SPACE = Path(lo.__file__).parent / "examples" / "segments_space.toml"


def main(argv=None) -> int:
    """Write the example CSV to the path given (default ``results.csv``)."""
    argv = sys.argv[1:] if argv is None else argv
    space = lo.LayoutSpace.from_toml(SPACE)
    card = space.cardinalities
    params = Params(
        np.float32(-3.0),
        (np.array([0.0, 0.15, 0.1]), np.array([0.0, 0.1]), np.array([0.0, 0.15])),
        tuple(np.zeros((card[k], card[j])) for k, j in pair_list(3)),
        np.array([0.1, -0.1]),
        (np.array([[0.0, 0.3, -0.3], [0.0, -0.3, 0.3]]), np.zeros((2, 2)), np.zeros((2, 2))),
    )
    world = SegmentWorld(space, params, shares=[0.7, 0.3])
    rng = np.random.default_rng(0)
    design = lo.initial_design(space, seed=0)
    codes = space.codes(design["index"].to_numpy())
    rows = []
    for g, n in ((0, 7000), (1, 3000)):
        clicks = world.serve(codes, np.full(len(codes), n), g, rng)
        for c, y in zip(codes, clicks, strict=True):
            rows.append(
                {**space.decode(c), **space.segment_of(g), "impressions": n, "clicks": int(y)}
            )
    pd.DataFrame(rows).to_csv(argv[0] if argv else "results.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
