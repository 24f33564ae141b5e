"""Stand-in for running a test: fill in impressions and clicks of a layouts file from a
synthetic world (the one ``layoutopt demo`` uses), so the campaign walk-through in README.md
can be replayed. Usage: python docs/serve_synthetic.py LAYOUTS.csv IMPRESSIONS SEED OUT.csv

The round's traffic, IMPRESSIONS per layout on average (IMPRESSIONS x the number of
layouts in all), is served by the layouts' ``weight`` column as an assignment by weight
would serve it: a multinomial draw, so a leader of weight 0.8 gets about 80% of the
impressions. A file without weights (a design) is served evenly.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import layoutopt as lo
from layoutopt.data.observations import read_layout_codes

space = lo.LayoutSpace.from_toml(Path(lo.__file__).parent / "examples" / "demo_space.toml")
world = lo.simulate.SyntheticWorld.random(
    space, seed=2024, base_rate=0.04, main_scale=0.25, pair_scale=0.1
)


def main(argv: list[str]) -> int:
    """Serve ``argv = [LAYOUTS.csv, IMPRESSIONS, SEED, OUT.csv]``; return the exit code."""
    layouts, impressions, seed, out = argv[0], int(argv[1]), int(argv[2]), argv[3]
    codes = read_layout_codes(layouts, space)
    weights = pd.read_csv(layouts).get("weight")
    n = len(codes)
    if weights is None:
        served = np.full(n, impressions, np.int64)
    else:
        w = weights.to_numpy(np.float64)
        served = np.random.default_rng(seed).multinomial(impressions * n, w / w.sum())
    frame = space.frame(codes).drop(columns="index")
    frame["impressions"] = served
    frame["clicks"] = world.serve(codes, served, seed=seed)
    frame.to_csv(out, index=False)
    top = int(np.argmax(served))
    how = (
        "evenly"
        if weights is None
        else f"by weight (largest {w[top] / w.sum():.3f}: {served[top]:,})"
    )
    print(f"{out}: {n} layouts, {int(served.sum()):,} impressions served {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
