"""Tests for the command line, run in-process through ``layoutopt.cli.main(argv)``.

Every subcommand runs on a tiny space (12 layouts) with the Laplace fit and few draws, so a
call takes seconds. Failures must exit non-zero with exactly one ``error: ...`` line on stderr,
no traceback, and no output file (nor temporary file) left behind.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layoutopt.cli import app as cli
from layoutopt.cli import library as cli_library
from layoutopt.cli.app import main

TINY_TOML = """\
[components]
headline = ["Free delivery", "Members save", "Try it free"]
image = ["van", "box"]
reviews = ["none", "stars"]

[[forbidden]]
headline = "Try it free"
image = "box"
"""

# True CTR of each (headline, image, reviews) for the tiny data set: clear winner
# ("Members save", "van", "stars").
TINY_TRUTH = {
    ("Free delivery", "van", "none"): 0.040,
    ("Free delivery", "box", "stars"): 0.050,
    ("Members save", "van", "stars"): 0.090,
    ("Members save", "box", "none"): 0.045,
    ("Try it free", "van", "stars"): 0.055,
    ("Try it free", "van", "none"): 0.035,
    ("Members save", "van", "none"): 0.060,
}


def run(capsys, *args: str) -> tuple[int, str, str]:
    """Call ``main(args)``; return (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *parts: str, expected_code: int = 2) -> None:
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in errors[0], f"{part!r} not in {errors[0]!r}"


def only_files(directory: Path) -> list[str]:
    """Names in a directory (hidden temporary files included)."""
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "space.toml").write_text(TINY_TOML)
    rng = np.random.default_rng(0)
    rows = []
    for (h, i, r), ctr in TINY_TRUTH.items():
        n = 4000
        rows.append(
            {
                "headline": h,
                "image": i,
                "reviews": r,
                "impressions": n,
                "clicks": int(rng.binomial(n, ctr)),
            }
        )
    pd.DataFrame(rows).to_csv(d / "obs.csv", index=False)
    return d


@pytest.fixture(scope="module")
def posterior_file(workdir) -> Path:
    """A posterior fitted once through the CLI and shared by score/best/propose tests."""
    path = workdir / "post.nc"
    code = main(
        [
            "fit",
            "--space",
            str(workdir / "space.toml"),
            "--data",
            str(workdir / "obs.csv"),
            "--samples",
            "200",
            "-o",
            str(path),
        ]
    )
    assert code == 0
    return path


# ------------------------------------------------------------------------ general
def test_help_lists_every_subcommand(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("demo", "design", "fit", "score", "best", "propose", "simulate"):
        assert name in out


def test_bare_command_shows_help_and_fails(capsys):
    code, out, err = run(capsys)
    assert code == 2 and "Usage" in out and "Traceback" not in err


# (case id, argv, expected parts of the error line)
USAGE_ERRORS = [
    ("unknown command", ["frobnicate"], ["No such command", "frobnicate"]),
    ("unknown option", ["design", "--space", "x.toml", "--colour"], ["No such option", "--colour"]),
    ("missing option", ["fit", "--data", "d.csv", "-o", "p.nc"], ["Missing option", "--space"]),
    ("bad choice", ["design", "--space", "x.toml", "--kind", "fancy"], ["--kind", "fancy"]),
    ("bad integer", ["design", "--space", "x.toml", "--size", "many"], ["--size", "integer"]),
    (
        "out of range",
        ["propose", "--posterior", "p.nc", "--k", "0"],
        ["--k", "greater than or equal to 1"],
    ),
]


@pytest.mark.parametrize(
    "argv, parts", [c[1:] for c in USAGE_ERRORS], ids=[c[0] for c in USAGE_ERRORS]
)
def test_usage_errors_are_one_line(capsys, argv, parts):
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *parts)


def test_unexpected_exception_is_one_line(capsys, monkeypatch, workdir):
    def boom(*args, **kwargs):
        raise RuntimeError("kaput\nsecond line")

    monkeypatch.setattr(cli_library.design.module(), "initial_design", boom)
    code, _, err = run(capsys, "design", "--space", workdir / "space.toml")
    assert_one_line_error(
        code, err, "internal error", "RuntimeError", "kaput second line", expected_code=1
    )


def test_app_main_exits_with_the_status(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["layoutopt", "frobnicate"])
    with pytest.raises(SystemExit) as info:
        cli.app_main()
    assert info.value.code == 2
    capsys.readouterr()


def test_console_script(tmp_path):
    script = Path(sys.executable).parent / "layoutopt"
    if not script.exists():
        pytest.fail(f"console script {script} is not installed; pip install -e .")
    result = subprocess.run(
        [str(script), "best", "--posterior", str(tmp_path / "no.nc")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'no.nc'}: no such posterior file"
    ]


# ------------------------------------------------------------------ atomic output
def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    from layoutopt.util.io import atomic_path

    target = tmp_path / "grid.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".csv"
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert only_files(tmp_path) == ["grid.csv"] and target.read_text() == "old"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert only_files(tmp_path) == ["grid.csv"] and target.read_text() == "new"


# ------------------------------------------------------------------------- design
def test_design_to_stdout_is_plain_csv(capsys, workdir):
    code, out, err = run(capsys, "design", "--space", workdir / "space.toml", "--seed", "3")
    assert code == 0, err
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["index", "headline", "image", "reviews"]
    assert len(frame) >= 6  # 3 x 2 headline/image pairs, one forbidden: at least 5 rows


def test_design_to_file_and_read_back(capsys, tmp_path, workdir):
    out_path = tmp_path / "design.csv"
    code, out, err = run(
        capsys,
        "design",
        "--space",
        workdir / "space.toml",
        "--kind",
        "random",
        "--size",
        "4",
        "-o",
        out_path,
    )
    assert code == 0, err
    assert out == "" and "wrote 4 layouts" in err
    frame = pd.read_csv(out_path)
    assert len(frame) == 4
    # a design with counts filled in is valid input for `fit`
    from layoutopt.data.observations import Observations
    from layoutopt.model.space import LayoutSpace

    space = LayoutSpace.from_toml(workdir / "space.toml")
    obs = Observations.from_frame(frame.assign(impressions=100, clicks=3), space)
    assert obs.num_layouts == 4


@pytest.mark.parametrize(
    "content, parts",
    [
        (None, ["no such layout-space file"]),
        ("[components\n", ["not valid TOML"]),
        ("[components]\nheadline = []\n", ["'headline'", "no variants"]),
    ],
    ids=["missing", "bad toml", "empty component"],
)
def test_design_bad_space_file(capsys, tmp_path, content, parts):
    space = tmp_path / "bad.toml"
    if content is not None:
        space.write_text(content)
    out_path = tmp_path / "design.csv"
    code, _, err = run(capsys, "design", "--space", space, "-o", out_path)
    assert_one_line_error(code, err, str(space), *parts)
    assert not out_path.exists()


def test_design_size_too_large(capsys, tmp_path, workdir):
    out_path = tmp_path / "design.csv"
    code, _, err = run(
        capsys,
        "design",
        "--space",
        workdir / "space.toml",
        "--kind",
        "random",
        "--size",
        "999",
        "-o",
        out_path,
    )
    assert_one_line_error(code, err, "999")
    assert only_files(tmp_path) == []


# ---------------------------------------------------------------------------- fit
def test_fit_writes_a_loadable_posterior(capsys, posterior_file):
    from layoutopt.infer.posterior import Posterior

    post = Posterior.load(posterior_file)
    assert post.num_draws == 200 and post.method == "laplace"
    assert post.space.components == ("headline", "image", "reviews")


# (case id, csv text, expected parts of the error line)
BAD_DATA = [
    (
        "unknown variant",
        "headline,image,reviews,impressions,clicks\nMembers save,van,none,10,1\n"
        "Members save,bus,none,10,1\n",
        ["row 2", "'image'", "'bus'", "valid variants"],
    ),
    (
        "clicks above impressions",
        "headline,image,reviews,impressions,clicks\nMembers save,van,none,10,11\n",
        ["row 1", "'clicks'", "exceed"],
    ),
    (
        "forbidden layout",
        "headline,image,reviews,impressions,clicks\nTry it free,box,none,10,1\n",
        ["row 1", "forbidden"],
    ),
    ("missing column", "headline,image,impressions,clicks\nMembers save,van,10,1\n", ["'reviews'"]),
    ("empty file", "", ["empty file"]),
]


@pytest.mark.parametrize("text, parts", [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_fit_bad_data_leaves_no_file(capsys, tmp_path, workdir, text, parts):
    data = tmp_path / "obs.csv"
    data.write_text(text)
    out_path = tmp_path / "post.nc"
    code, _, err = run(
        capsys, "fit", "--space", workdir / "space.toml", "--data", data, "-o", out_path
    )
    assert_one_line_error(code, err, str(data), *parts)
    assert only_files(tmp_path) == ["obs.csv"]


def test_fit_checks_the_output_before_fitting(capsys, tmp_path, workdir):
    code, _, err = run(
        capsys,
        "fit",
        "--space",
        workdir / "space.toml",
        "--data",
        workdir / "obs.csv",
        "-o",
        tmp_path / "missing_dir" / "post.nc",
    )
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run(
        capsys,
        "fit",
        "--space",
        workdir / "space.toml",
        "--data",
        workdir / "obs.csv",
        "-o",
        tmp_path / "post.txt",
    )
    assert_one_line_error(code, err, "'.txt'", ".nc")


def test_fit_missing_data_file(capsys, tmp_path, workdir):
    code, _, err = run(
        capsys,
        "fit",
        "--space",
        workdir / "space.toml",
        "--data",
        tmp_path / "nope.parquet",
        "-o",
        tmp_path / "post.nc",
    )
    assert_one_line_error(code, err, "nope.parquet", "no such file")


# -------------------------------------------------------------------------- score
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_writes_the_grid(capsys, tmp_path, posterior_file, suffix):
    out_path = tmp_path / f"grid{suffix}"
    code, out, err = run(capsys, "score", "--posterior", posterior_file, "-o", out_path)
    assert code == 0, err
    frame = pd.read_csv(out_path) if suffix == ".csv" else pd.read_parquet(out_path)
    assert len(frame) == 10  # 12 layouts, 2 forbidden
    assert {"index", "headline", "mean", "lower", "upper", "p_best"} <= set(frame.columns)
    assert frame["p_best"].sum() == pytest.approx(1.0)
    assert "Members save" in out  # the table of the best layouts


def test_score_top_k_without_file_prints_a_table(capsys, posterior_file):
    code, out, err = run(capsys, "score", "--posterior", posterior_file, "--top", "3")
    assert code == 0, err
    assert "Top 3 of 10 layouts" in out


def test_score_bad_posterior_file(capsys, tmp_path):
    bogus = tmp_path / "bogus.nc"
    bogus.write_text("not netcdf")
    out_path = tmp_path / "grid.csv"
    code, _, err = run(capsys, "score", "--posterior", bogus, "-o", out_path)
    assert_one_line_error(code, err, str(bogus))
    assert only_files(tmp_path) == ["bogus.nc"]


def test_score_rejects_unknown_output_format(capsys, tmp_path, posterior_file):
    code, _, err = run(capsys, "score", "--posterior", posterior_file, "-o", tmp_path / "g.xlsx")
    assert_one_line_error(code, err, "'.xlsx'")


# --------------------------------------------------------------------------- best
def test_best_json_names_the_winner(capsys, posterior_file):
    code, out, err = run(capsys, "best", "--posterior", posterior_file, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["layout"] == {"headline": "Members save", "image": "van", "reviews": "stars"}
    assert record["lower"] <= record["mean"] <= record["upper"]
    assert 0.0 <= record["p_best"] <= 1.0


def test_best_table(capsys, posterior_file):
    code, out, err = run(capsys, "best", "--posterior", posterior_file)
    assert code == 0, err
    assert "Members save" in out and "P(best)" in out


# ------------------------------------------------------------------------ propose
def test_propose_to_file_excluding_observed(capsys, tmp_path, posterior_file, workdir):
    out_path = tmp_path / "next.csv"
    code, _, err = run(
        capsys,
        "propose",
        "--posterior",
        posterior_file,
        "--k",
        "3",
        "--strategy",
        "top_two",
        "--exclude",
        workdir / "obs.csv",
        "-o",
        out_path,
    )
    assert code == 0, err
    frame = pd.read_csv(out_path)
    assert 1 <= len(frame) <= 3
    assert frame["weight"].sum() == pytest.approx(1.0)
    observed = {
        tuple(r)
        for r in pd.read_csv(workdir / "obs.csv")[["headline", "image", "reviews"]].itertuples(
            index=False
        )
    }
    proposed = {tuple(r) for r in frame[["headline", "image", "reviews"]].itertuples(index=False)}
    assert not proposed & observed


def test_propose_to_stdout_is_plain_csv(capsys, posterior_file):
    code, out, err = run(
        capsys, "propose", "--posterior", posterior_file, "--k", "2", "--strategy", "greedy"
    )
    assert code == 0, err
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["index", "headline", "image", "reviews", "weight"]
    assert len(frame) == 2


def test_propose_bad_exclude_file(capsys, tmp_path, posterior_file):
    bad = tmp_path / "observed.csv"
    bad.write_text("headline,image,reviews\nMembers save,van,maybe\n")
    out_path = tmp_path / "next.csv"
    code, _, err = run(
        capsys, "propose", "--posterior", posterior_file, "--exclude", bad, "-o", out_path
    )
    assert_one_line_error(code, err, str(bad), "row 1", "'reviews'", "'maybe'")
    assert only_files(tmp_path) == ["observed.csv"]


# ----------------------------------------------------------------------- simulate
def test_simulate_prints_a_regret_table(capsys):
    # Baselines only: the model strategies' campaigns are tested in test_simulate.py; here
    # the wiring (world, progress, table) is what matters.
    code, out, err = run(
        capsys,
        "simulate",
        "--preset",
        "hill2017",
        "--strategy",
        "uniform",
        "--strategy",
        "independent",
        "--budget",
        "3000",
        "--batch-size",
        "1000",
    )
    assert code == 0, err
    assert "Regret" in out and "uniform" in out and "independent" in out
    assert "1,000" in out and "3,000" in out
    assert "6/6 rounds" in err


@pytest.mark.slow
def test_simulate_a_model_policy_on_the_demo_world(capsys):
    code, out, err = run(
        capsys,
        "simulate",
        "--preset",
        "demo",
        "--strategy",
        "greedy",
        "--budget",
        "2000",
        "--batch-size",
        "1000",
        "--samples",
        "100",
    )
    assert code == 0, err
    assert "1,020 allowed layouts" in out and "greedy" in out
    assert "2/2 rounds" in err


# --------------------------------------------------------------------------- demo
@pytest.mark.slow
def test_demo_runs(capsys):
    code, out, err = run(
        capsys,
        "demo",
        "--rounds",
        "1",
        "--k",
        "4",
        "--samples",
        "200",
        "--top",
        "3",
        "--impressions",
        "7000",
    )
    assert code == 0, err
    for part in (
        "Rounds",
        "pairwise design",
        "thompson, k=4",
        "Best layout",
        "True best layout",
        "Top 3 of 1,020 layouts",
        "7,000",  # impressions after round 0
        "14,000",  # after round 1
    ):
        assert part in out
    assert "warning" not in err and "error" not in err
