"""``fit``'s NUTS options (--warmup, --target-accept), progress bars only on a terminal, and
the words of ``simulate``'s regret table."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from layoutopt.cli.app import main
from layoutopt.infer.posterior import Posterior

SPACE = """\
[components]
headline = ["Free delivery", "Members save", "Try it free"]
image = ["van", "box"]
"""
CLICKS = {
    ("Free delivery", "van"): 160,
    ("Free delivery", "box"): 200,
    ("Members save", "van"): 360,
    ("Members save", "box"): 180,
    ("Try it free", "van"): 140,
    ("Try it free", "box"): 150,
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fitopts")
    (d / "space.toml").write_text(SPACE)
    lines = ["headline,image,impressions,clicks"]
    lines += [f"{h},{i},4000,{c}" for (h, i), c in CLICKS.items()]
    (d / "obs.csv").write_text("\n".join(lines) + "\n")
    return d


def _nuts(capsys, inputs: Path, out: str, *extra: str):
    argv = ["fit", "-s", inputs / "space.toml", "-d", inputs / "obs.csv", "-o", inputs / out]
    argv += ["--method", "nuts", "--samples", "40", "--seed", "3", *extra]
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    leaves = jax.tree_util.tree_leaves(Posterior.load(inputs / out).params)
    return np.concatenate([np.ravel(np.asarray(x)) for x in leaves]), captured.err


@pytest.mark.slow
def test_warmup_and_target_accept_reach_nuts(capsys, inputs):
    base, err = _nuts(capsys, inputs, "a.nc", "--warmup", "40")
    # stderr is not a terminal here: no NumPyro progress bar in it
    assert "it/s]" not in err and "sample:" not in err, err
    # (same options and seed give the same draws: tests/infer/test_inference.py's
    # test_bad_nuts_run_warns_and_is_reproducible, through the same fit the CLI calls)
    longer, _ = _nuts(capsys, inputs, "b.nc", "--warmup", "41")
    stricter, _ = _nuts(capsys, inputs, "c.nc", "--warmup", "40", "--target-accept", "0.97")
    assert not np.array_equal(base, longer)
    assert not np.array_equal(base, stricter)


@pytest.mark.parametrize(
    "extra, parts",
    [
        (["--warmup", "10"], ["--warmup and --target-accept apply to --method nuts"]),
        (["--method", "nuts", "--target-accept", "1"], ["--target-accept"]),
        (["--method", "nuts", "--target-accept", "0"], ["--target-accept"]),
        (["--method", "nuts", "--warmup", "0"], ["--warmup"]),
    ],
)
def test_bad_nuts_options_are_one_line(capsys, inputs, extra, parts):
    argv = ["fit", "-s", inputs / "space.toml", "-d", inputs / "obs.csv", "-o", inputs / "x.nc"]
    code = main([str(a) for a in [*argv, *extra]])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in errors[0]
    assert not (inputs / "x.nc").exists()


def test_simulate_says_local_regret(capsys):
    code = main(["simulate", "--strategy", "uniform", "--budget", "2000", "--batch-size", "1000"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "local" in out and "simple" in out
    assert "cumulative" not in out
    # stderr is no terminal: no bar, one line once done
    assert "━" not in err and "simulating" not in err, err
    assert "simulated uniform: 2/2 rounds in " in err
