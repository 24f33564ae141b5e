"""The README's delayed-clicks example: young layouts, naive vs delay="auto"."""

import tempfile
from pathlib import Path

import numpy as np

import layoutopt as lo
from layoutopt.sim.simulate import SyntheticWorld
from layoutopt.sim.timeworld import TimeWorld, event_log

space = lo.LayoutSpace({"headline": ["h1", "h2", "h3"], "image": ["a", "b", "c"]})
world = TimeWorld(SyntheticWorld.random(space, seed=3, base_rate=0.08), lo.Weibull(0.8, 10.0))
rng = np.random.default_rng(3)
idx = rng.integers(0, 9, 60_000)  # layouts 6-8 only in the last 6 hours
served = np.where(idx < 6, rng.uniform(0, 168, idx.size), rng.uniform(162, 168, idx.size))
log = event_log(world, space.codes(idx), served, 168.0, rng)  # start 2026-01-01
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "events.parquet"
    log.to_parquet(path)
    obs = lo.Observations.from_events(path, space, now="2026-01-08T00:00")
print(obs)
young = space.frame(space.codes(np.arange(6, 9)))
for delay in (None, "auto"):
    post = lo.fit(space, obs, delay=delay, seed=0)
    s = lo.score_layouts(post, space, young)
    print(f"delay={delay!r:7} {post.diagnostics.get('delay', '')}")
    print(s[["headline", "image", "mean", "lower", "upper"]].round(4).to_string(index=False))
print("true CTR", np.round(world.world.ctr(space.codes(np.arange(6, 9))), 4))
