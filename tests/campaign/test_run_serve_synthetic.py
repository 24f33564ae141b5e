"""docs/serve_synthetic.py serves a proposal by its weights, not a flat count per layout."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pandas as pd

import layoutopt as lo

SCRIPT = Path(__file__).parents[2] / "docs" / "serve_synthetic.py"


def test_weights_are_served_as_weights(tmp_path, capsys):
    space = lo.LayoutSpace.from_toml(Path(lo.__file__).parent / "examples" / "demo_space.toml")
    frame = space.frame(space.codes(np.arange(4)))
    weights = np.array([0.8, 0.1, 0.05, 0.05])
    frame["weight"] = weights
    layouts, out = tmp_path / "next.csv", tmp_path / "round1.csv"
    frame.to_csv(layouts, index=False)
    main = runpy.run_path(str(SCRIPT))["main"]
    assert main([str(layouts), "3000", "2", str(out)]) == 0
    served = pd.read_csv(out)["impressions"].to_numpy()
    assert served.sum() == 12_000
    share = served / served.sum()
    # multinomial shares: within 4 standard errors of the weights
    assert np.all(np.abs(share - weights) <= 4 * np.sqrt(weights * (1 - weights) / 12_000))
    assert "served by weight (largest 0.800" in capsys.readouterr().out
    frame.drop(columns="weight").to_csv(layouts, index=False)  # a design: served evenly
    assert main([str(layouts), "3000", "2", str(out)]) == 0
    assert pd.read_csv(out)["impressions"].tolist() == [3000] * 4
