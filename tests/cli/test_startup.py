"""The command line starts without the numerical stages: ``--help`` never imports JAX, nor
do the commands that only read a campaign's store (``campaign status``, ``best``, ``export``).

Each case runs in a fresh interpreter (``sys.modules`` of the test process already holds
JAX), runs the command and reports whether ``jax`` was imported (numpyro and optax import
it, so its absence is theirs too).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import layoutopt.inference
import layoutopt.propose
import numpy as np
import pandas as pd
import pytest
from layoutopt.simulate import SyntheticWorld

import layoutopt as lo
import layoutopt.decide.proposals
from layoutopt.campaign.campaign import Campaign
from layoutopt.cli import options
from layoutopt.cli.simulation import CAMPAIGN_POLICIES
from layoutopt.decide.design import DESIGN_KINDS, initial_design
from layoutopt.decide.proposals import STRATEGIES
from layoutopt.infer.fitting import METHODS
from layoutopt.model.space import LayoutSpace

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from layoutopt.cli import main
code = main({argv!r})
sys.stdout.flush()
print("JAX-IMPORTED" if "jax" in sys.modules else "JAX-ABSENT", code)
"""


def _probe(argv: list[str]) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="100")
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


HELP_CASES = [
    ["--help"],
    ["fit", "--help"],
    ["design", "--help"],
    ["score", "--help"],
    ["simulate", "--help"],
    ["demo", "--help"],
    ["report", "--help"],
    ["campaign", "--help"],
    ["campaign", "status", "--help"],
    ["campaign", "propose", "--help"],
    ["campaign", "assign", "--help"],
]


@pytest.mark.parametrize("argv", HELP_CASES, ids=[" ".join(a) for a in HELP_CASES])
def test_help_does_not_import_jax(argv):
    out = _probe(argv)
    assert "Usage: layoutopt" in out
    assert out.strip().endswith("JAX-ABSENT 0"), out[-200:]


def test_design_does_not_import_jax(tmp_path):
    # the stage packages re-export lazily (util.lazy), so a design needs no numerics
    space = ROOT / "layoutopt" / "examples" / "demo_space.toml"
    out = _probe(["design", "--space", str(space), "-o", str(tmp_path / "design.csv")])
    assert out.strip().endswith("JAX-ABSENT 0"), out[-300:]
    design = pd.read_csv(tmp_path / "design.csv")
    assert len(design) == 36 and set(design.columns) >= {"index", "headline", "reviews"}


SPACE = LayoutSpace(
    {"headline": ["h1", "h2", "h3"], "image": ["i1", "i2"], "reviews": ["none", "stars", "quote"]}
)
CONTROL = {"headline": "h1", "image": "i2", "reviews": "none"}


def _served(frame: pd.DataFrame, n, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = frame[list(SPACE.components)].astype(str).copy()
    eta = -2.2 + 0.3 * (out["headline"] == "h2") + 0.25 * (out["reviews"] == "stars")
    out["impressions"] = n
    out["clicks"] = rng.binomial(out["impressions"], 1 / (1 + np.exp(-eta.to_numpy())))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A real store with everything status prints: two proposed rounds served to units with
    a holdout (sample-ratio and lift lines), two fits, a recorded decision, and a batch
    ingested after the last fit (stale)."""
    db = tmp_path_factory.mktemp("store") / "c.db"
    units = [f"u{i}" for i in range(3000)]
    with Campaign.create(db, SPACE, holdout=0.2, control=CONTROL) as camp:
        camp.ingest(_served(initial_design(SPACE, seed=0), 60, seed=1))
        camp.fit(seed=0)
        camp.propose(k=6, seed=5)
        a = camp.assign(units)
        logged = {"round": a["round"], "propensity": a["propensity"], "holdout": a["holdout"]}
        camp.ingest(_served(a, 1, seed=2).assign(**logged))
        camp.fit(seed=1)
        camp.decision()
        camp.propose(k=4, seed=6)
        a = camp.assign(units[:1500])
        camp.ingest(_served(a, 1, seed=3).assign(round=a["round"]))
    return db


def test_campaign_status_does_not_import_jax(store):
    out = _probe(["campaign", "status", "--db", str(store)])
    assert out.strip().endswith("JAX-ABSENT 0"), out[-300:]
    # every part of status ran: rounds, checks, the lift, the verdict, the stale fit
    for part in ("1 batch(es) ingested since the last fit", "thompson, k=4", "latest fit:"):
        assert part in out
    assert out.count("sample ratio ok") == 2 and "holdout lift:" in out
    assert "decision: stop and ship: leader" in out or "decision: continue: leader" in out


def test_campaign_best_and_export_do_not_import_jax(store, tmp_path):
    out = _probe(["campaign", "best", "--json", "--db", str(store)])
    assert out.strip().endswith("JAX-ABSENT 0"), out[-300:]
    assert '"stale": "1 batch(es) ingested since the last fit"' in out
    out = _probe(["campaign", "export", "--db", str(store), "-o", str(tmp_path / "x")])
    assert out.strip().endswith("JAX-ABSENT 0"), out[-300:]
    with Campaign.open(store) as camp:  # the files hold what the full campaign reads
        expected = camp.observations().to_frame(), camp.proposals(), camp.history()
    for stem, frame in zip(("observations", "proposals", "history"), expected, strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "x" / f"{stem}.parquet"), frame)


def test_the_probe_can_see_jax():
    # The same probe reports JAX once a command needs it (so the test above can fail).
    out = _probe(["best", "--posterior", "missing.nc"])
    assert "JAX-IMPORTED" in out


def test_package_root_imports_lazily():
    code = (
        "import sys, layoutopt as lo; a = 'jax' in sys.modules; f = lo.fit; "
        "print(a, 'jax' in sys.modules, callable(f))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.split() == ["False", "True", "True"]


def test_public_names_and_old_module_paths_resolve():
    assert SyntheticWorld is lo.simulate.SyntheticWorld
    assert layoutopt.inference is sys.modules["layoutopt.infer"]
    assert sys.modules["layoutopt.propose"] is layoutopt.decide.proposals
    # the old module path does not shadow the public function of the same name
    assert lo.propose is layoutopt.decide.proposals.propose
    for name in lo.__all__:
        assert getattr(lo, name) is not None, name
    assert lo.policies.thompson is not None and lo.driver.run is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lo.nope  # noqa: B018


STAGES = ("model", "data", "infer", "score", "decide", "campaign", "sim")


@pytest.mark.parametrize("stage", STAGES)
def test_stage_packages_load_each_public_name_from_its_module(stage):
    package = importlib.import_module(f"layoutopt.{stage}")
    assert package.__all__ and set(package.__all__) <= set(dir(package))
    for name in package.__all__:
        value = getattr(package, name)
        home = getattr(value, "__module__", None)
        if home is not None and home.startswith("layoutopt."):
            # the package's name is the defining module's object, not a copy
            assert value is getattr(sys.modules[home], name), name
        assert vars(package)[name] is value  # loaded once, then an ordinary attribute
    with pytest.raises(AttributeError, match=f"'layoutopt.{stage}' has no attribute 'nope'"):
        package.nope  # noqa: B018
    # a submodule is an attribute as when the package imported it eagerly
    assert layoutopt.model.space is sys.modules["layoutopt.model.space"]


def test_cli_choices_are_the_librarys():
    assert options.METHODS == METHODS
    assert options.DESIGN_KINDS == DESIGN_KINDS
    assert options.STRATEGIES == STRATEGIES
    assert set(STRATEGIES) <= set(CAMPAIGN_POLICIES)
