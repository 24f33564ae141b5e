"""Stand-in for running a test: fill in impressions and clicks of a layouts file from a
synthetic world (the one ``layoutopt demo`` uses), so the campaign walk-through in README.md
can be replayed. Usage: python docs/serve_synthetic.py LAYOUTS.csv IMPRESSIONS SEED OUT.csv
"""

import sys
from pathlib import Path

import numpy as np

import layoutopt as lo
from layoutopt.data.observations import read_layout_codes

space = lo.LayoutSpace.from_toml(Path(lo.__file__).parent / "examples" / "demo_space.toml")
world = lo.simulate.SyntheticWorld.random(
    space, seed=2024, base_rate=0.04, main_scale=0.25, pair_scale=0.1
)
layouts, impressions, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
codes = read_layout_codes(layouts, space)
frame = space.frame(codes).drop(columns="index")
frame["impressions"] = impressions
frame["clicks"] = world.serve(codes, np.full(len(codes), impressions), seed=seed)
frame.to_csv(out, index=False)
print(f"{out}: {len(frame)} layouts, {impressions} impressions each")
