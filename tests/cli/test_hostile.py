"""Hostile and extreme inputs, table-driven, across the command line and the API.

Every case asserts: the exit code (or exception type), exactly one ``error: ...`` line that
names the fault, no traceback, and that the working directory is unchanged afterwards: no new
file, no temporary file, and every earlier file byte-identical.

In-process cases fail before any heavy work. Cases that would use a lot of memory or time if
a guard regressed (models and spaces far too large, full disks, read-only file systems) run
in a subprocess under ``RLIMIT_AS`` (4 GiB) and a timeout, so a regression fails the test
instead of the machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layoutopt.cli import app as cli
from layoutopt.data.observations import Observations
from layoutopt.decide.design import initial_design
from layoutopt.decide.proposals import propose
from layoutopt.infer.fitting import fit
from layoutopt.infer.posterior import Posterior
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import RESERVED_NAMES, LayoutSpace
from layoutopt.score.scoring import best_layout, score_grid
from layoutopt.util.limits import SEED_MAX, check_seed

SPACE = """\
[components]
headline = ["h1", "h2", "h3"]
image = ["van", "box"]
reviews = ["none", "stars"]
"""

DATA = """\
headline,image,reviews,impressions,clicks
h1,van,none,2000,80
h2,box,stars,2000,110
h3,van,stars,2000,95
h1,box,stars,2000,70
h2,van,none,2000,90
h3,box,none,2000,60
"""

HEADER = "headline,image,reviews,impressions,clicks\n"
BIG = 2**53


def huge_toml(components: int = 40, variants: int = 10) -> str:
    """A space of ``variants ** components`` layouts (10^40 by default)."""
    lines = ["[components]"]
    for k in range(components):
        labels = ", ".join(f'"v{j}"' for j in range(variants))
        lines.append(f"c{k} = [{labels}]")
    return "\n".join(lines) + "\n"


def huge_csv(components: int = 40, variants: int = 10) -> str:
    head = ",".join(f"c{k}" for k in range(components)) + ",impressions,clicks\n"
    rows = [
        ",".join(f"v{(r + k) % variants}" for k in range(components)) + ",1000,40\n"
        for r in range(3)
    ]
    return head + "".join(rows)


def snapshot(d: Path) -> dict[str, str | None]:
    """Every path under ``d`` (hidden temporary files included) with its content hash."""
    out: dict[str, str | None] = {}
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
    return out


def random_posterior(space: LayoutSpace, draws: int, seed: int) -> Posterior:
    """A posterior of random draws (no fit: the fit of such a space is what is refused)."""
    from layoutopt.model.core import Params, pair_list

    rng = np.random.default_rng(seed)
    card = space.cardinalities
    params = Params(
        rng.normal(-3.0, 0.1, draws).astype(np.float32),
        tuple(rng.normal(0, 0.3, (draws, n)).astype(np.float32) for n in card),
        tuple(
            rng.normal(0, 0.15, (draws, card[k], card[j])).astype(np.float32)
            for k, j in pair_list(len(card))
        ),
    )
    return Posterior(space=space, prior=PriorConfig(), params=params, method="laplace")


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """Working directory with valid inputs, hostile inputs and earlier outputs."""
    d = tmp_path_factory.mktemp("hostile")
    (d / "space.toml").write_text(SPACE)
    (d / "data.csv").write_text(DATA)
    space = LayoutSpace.from_toml(d / "space.toml")
    obs = Observations.from_csv(d / "data.csv", space)
    post = fit(space, obs, method="laplace", seed=0, num_samples=200)
    post.save(d / "p.nc")
    # A posterior file with one NaN draw, written behind the library's back.
    import h5py

    shutil.copy(d / "p.nc", d / "nan.nc")
    with h5py.File(d / "nan.nc", "r+") as fh:
        fh["posterior/main__headline"][0, 3, 1] = np.nan
    raw = (d / "p.nc").read_bytes()
    (d / "truncated.nc").write_bytes(raw[: len(raw) // 2])
    (d / "empty.nc").write_bytes(b"")
    (d / "huge.toml").write_text(huge_toml())
    (d / "huge.csv").write_text(huge_csv())
    (d / "mid.toml").write_text(huge_toml(15, 8))
    (d / "h100.toml").write_text(huge_toml(100, 20))
    (d / "mid.csv").write_text(huge_csv(15, 8))
    # 10^20 layouts: far beyond enumeration and exact search, and (20 components rather
    # than 40) quick enough to save in the fixture.
    (d / "huge20.toml").write_text(huge_toml(20))
    random_posterior(LayoutSpace.from_toml(d / "huge20.toml"), 4, seed=1).save(d / "huge.nc")
    (d / "old.csv").write_text("earlier output\n")
    (d / "old.nc").write_bytes(raw)
    (d / "adir").mkdir()
    (d / "afile").write_text("a plain file\n")
    (d / "latin1.toml").write_bytes('[components]\nheadline = ["caf\xe9"]\n'.encode("latin-1"))
    (d / "latin1.csv").write_bytes(
        (HEADER + "h1,van,none,10,1\ncaf\xe9,van,none,1,0\n").encode("latin-1")
    )
    for k, name in enumerate(RESERVED_NAMES):
        (d / f"reserved_{k}.toml").write_text(f'[components]\n"{name}" = ["a", "b"]\nx = ["1"]\n')
    (d / "Lower.toml").write_text('[components]\nLower = ["a", "b"]\n')
    tomls = {
        "badsyntax.toml": "[components\nheadline = 1\n",
        "nocomponents.toml": "[other]\nx = 1\n",
        "emptycomp.toml": "[components]\n",
        "dupvariant.toml": '[components]\nheadline = ["a", "a"]\n',
        "scalarcomp.toml": "components = 3\n",
        "tableforbidden.toml": SPACE + '[forbidden]\nheadline = "h1"\n',
        "unknownrule.toml": SPACE + '[[forbidden]]\ncolour = "red"\n',
        "allforbidden.toml": '[components]\nheadline = ["h1"]\n[[forbidden]]\nheadline = "h1"\n',
        "novariants.toml": "[components]\nheadline = []\n",
    }
    for name, text in tomls.items():
        (d / name).write_text(text)
    csvs = {
        "dupclicks.csv": "headline,image,reviews,impressions,clicks,clicks\nh1,van,none,10,1,2\n",
        "duplabel.csv": "headline,headline,image,reviews,impressions,clicks\nh1,h2,van,none,10,1\n",
        "over53.csv": HEADER + f"h1,van,none,{BIG + 2},1\n",
        "sum53.csv": HEADER + f"h1,van,none,{BIG},1\nh1,van,none,{BIG},1\n",
        "clicksover.csv": HEADER + "h1,van,none,10,11\n",
        "negative.csv": HEADER + "h1,van,none,-10,1\n",
        "fraction.csv": HEADER + "h1,van,none,10.5,1\n",
        "nan.csv": HEADER + "h1,van,none,nan,1\n",
        "inf.csv": HEADER + "h1,van,none,inf,1\n",
        "unknownlabel.csv": HEADER + "h9,van,none,10,1\n",
        "missinglabel.csv": HEADER + ",van,none,10,1\n",
        "empty.csv": "",
        "headeronly.csv": HEADER,
        "missingcol.csv": "headline,image,impressions,clicks\nh1,van,10,1\n",
        "longrow.csv": HEADER + "h1,van,none,10,1,extra\n",
        "data.txt": DATA,
    }
    for name, text in csvs.items():
        (d / name).write_text(text)
    (d / "data_dir.csv").mkdir()
    (d / "posterior_dir.nc").mkdir()
    return d


# ------------------------------------------------------------------- in-process CLI cases
# (id, argv with {d} for the working directory, exit code, fragments of the error line)
CLI_CASES = [
    # space files
    *[
        (
            f"reserved-{name}",
            ["design", "-s", f"{{d}}/reserved_{k}.toml"],
            2,
            [repr(name), "reserved"],
        )
        for k, name in enumerate(RESERVED_NAMES)
    ],
    ("reserved-any-case", ["design", "-s", "{d}/Lower.toml"], 2, ["'Lower'", "reserved"]),
    ("toml-not-utf8", ["design", "-s", "{d}/latin1.toml"], 2, ["latin1.toml", "UTF-8"]),
    ("toml-is-dir", ["design", "-s", "{d}/adir"], 2, ["adir", "is a directory"]),
    ("toml-missing", ["design", "-s", "{d}/nope.toml"], 2, ["nope.toml", "no such"]),
    ("toml-syntax", ["design", "-s", "{d}/badsyntax.toml"], 2, ["badsyntax.toml", "TOML"]),
    ("toml-no-components", ["design", "-s", "{d}/nocomponents.toml"], 2, ["[components]"]),
    ("toml-empty-components", ["design", "-s", "{d}/emptycomp.toml"], 2, ["at least one"]),
    ("toml-dup-variant", ["design", "-s", "{d}/dupvariant.toml"], 2, ["'a' twice"]),
    ("toml-scalar-components", ["design", "-s", "{d}/scalarcomp.toml"], 2, ["[components]"]),
    ("toml-forbidden-table", ["design", "-s", "{d}/tableforbidden.toml"], 2, ["[[forbidden]]"]),
    ("toml-unknown-rule", ["design", "-s", "{d}/unknownrule.toml"], 2, ["'colour'"]),
    ("toml-all-forbidden", ["design", "-s", "{d}/allforbidden.toml"], 2, ["forbid every"]),
    ("toml-no-variants", ["design", "-s", "{d}/novariants.toml"], 2, ["no variants"]),
    # data files
    *[
        (
            f"data-{name}",
            ["fit", "-s", "{d}/space.toml", "-d", f"{{d}}/{name}", "-o", "{d}/o.nc"],
            2,
            parts,
        )
        for name, parts in [
            ("dupclicks.csv", ["dupclicks.csv", "'clicks'", "more than once"]),
            ("duplabel.csv", ["duplabel.csv", "'headline'", "more than once"]),
            ("data_dir.csv", ["data_dir.csv", "is a directory"]),
            ("nothere.csv", ["nothere.csv", "no such file"]),
            ("over53.csv", ["over53.csv", "row 1", "'impressions'", "2**53"]),
            ("sum53.csv", ["sum53.csv", "add up to more than 2**53"]),
            ("clicksover.csv", ["clicksover.csv", "row 1", "exceed"]),
            ("negative.csv", ["negative.csv", "row 1", "negative"]),
            ("fraction.csv", ["fraction.csv", "'10.5'", "whole number"]),
            ("nan.csv", ["nan.csv", "'impressions'", "not a number"]),
            ("inf.csv", ["inf.csv", "'impressions'", "not a finite number"]),
            ("unknownlabel.csv", ["unknownlabel.csv", "'h9'", "valid variants"]),
            ("missinglabel.csv", ["missinglabel.csv", "missing label"]),
            ("empty.csv", ["empty.csv", "empty file"]),
            ("headeronly.csv", ["headeronly.csv", "no data rows"]),
            ("missingcol.csv", ["missingcol.csv", "missing column", "'reviews'"]),
            ("longrow.csv", ["longrow.csv", "more fields than the header"]),
            ("latin1.csv", ["latin1.csv", "not a readable CSV"]),
            ("data.txt", ["data.txt", "'.txt'", ".csv"]),
        ]
    ],
    # posterior files
    ("score-nan-posterior", ["score", "-p", "{d}/nan.nc"], 2, ["non-finite", "main[headline]"]),
    ("best-nan-posterior", ["best", "-p", "{d}/nan.nc"], 2, ["non-finite", "1 of 200 draws"]),
    ("propose-nan-posterior", ["propose", "-p", "{d}/nan.nc"], 2, ["non-finite"]),
    (
        "posterior-is-dir",
        ["score", "-p", "{d}/posterior_dir.nc"],
        2,
        ["posterior_dir.nc", "directory"],
    ),
    ("posterior-missing", ["best", "-p", "{d}/nope.nc"], 2, ["nope.nc", "no such posterior"]),
    ("posterior-is-csv", ["best", "-p", "{d}/data.csv"], 2, ["data.csv", "not a readable"]),
    ("posterior-empty", ["best", "-p", "{d}/empty.nc"], 2, ["empty.nc", "not a readable"]),
    ("posterior-truncated", ["propose", "-p", "{d}/truncated.nc"], 2, ["truncated.nc"]),
    # output paths
    (
        "fit-out-dir",
        ["fit", "-s", "{d}/space.toml", "-d", "{d}/data.csv", "-o", "{d}/adir"],
        2,
        ["adir", "is a directory"],
    ),
    (
        "fit-out-parent-file",
        ["fit", "-s", "{d}/space.toml", "-d", "{d}/data.csv", "-o", "{d}/afile/p.nc"],
        2,
        ["afile", "is a file"],
    ),
    (
        "fit-out-no-dir",
        ["fit", "-s", "{d}/space.toml", "-d", "{d}/data.csv", "-o", "{d}/nodir/p.nc"],
        2,
        ["nodir", "does not exist"],
    ),
    (
        "fit-out-suffix",
        ["fit", "-s", "{d}/space.toml", "-d", "{d}/data.csv", "-o", "{d}/p.csv"],
        2,
        ["p.csv", "'.nc'"],
    ),
    ("score-out-dir", ["score", "-p", "{d}/p.nc", "-o", "{d}/adir"], 2, ["adir"]),
    (
        "score-out-dir-csv",
        ["score", "-p", "{d}/p.nc", "-o", "{d}/data_dir.csv"],
        2,
        ["data_dir.csv", "is a directory"],
    ),
    (
        "score-out-parent-file",
        ["score", "-p", "{d}/p.nc", "-o", "{d}/afile/g.csv"],
        2,
        ["afile", "is a file"],
    ),
    (
        "score-out-suffix",
        ["score", "-p", "{d}/p.nc", "-o", "{d}/g.txt"],
        2,
        ["g.txt", "unsupported"],
    ),
    (
        "propose-out-parent-file",
        ["propose", "-p", "{d}/p.nc", "-o", "{d}/afile/n.csv"],
        2,
        ["afile", "is a file"],
    ),
    (
        "design-out-dir",
        ["design", "-s", "{d}/space.toml", "-o", "{d}/data_dir.csv"],
        2,
        ["is a directory"],
    ),
    (
        "propose-exclude-dir",
        ["propose", "-p", "{d}/p.nc", "--exclude", "{d}/data_dir.csv"],
        2,
        ["data_dir.csv", "is a directory"],
    ),
    # options and seeds
    (
        "fit-seed-negative",
        ["fit", "-s", "{d}/space.toml", "-d", "{d}/data.csv", "-o", "{d}/o.nc", "--seed", "-1"],
        2,
        ["--seed", str(SEED_MAX)],
    ),
    (
        "fit-seed-2^32",
        [
            "fit",
            "-s",
            "{d}/space.toml",
            "-d",
            "{d}/data.csv",
            "-o",
            "{d}/o.nc",
            "--seed",
            str(2**32),
        ],
        2,
        ["--seed", str(SEED_MAX)],
    ),
    (
        "propose-seed-huge",
        ["propose", "-p", "{d}/p.nc", "--seed", str(10**30)],
        2,
        ["--seed", str(SEED_MAX)],
    ),
    ("design-seed-negative", ["design", "-s", "{d}/space.toml", "--seed", "-5"], 2, ["--seed"]),
    ("simulate-seed-negative", ["simulate", "--seed", "-1"], 2, ["--seed"]),
    ("demo-seed-huge", ["demo", "--seed", str(2**64)], 2, ["--seed"]),
    ("seed-not-integer", ["design", "-s", "{d}/space.toml", "--seed", "1.5"], 2, ["--seed"]),
    (
        "fit-samples-zero",
        ["fit", "-s", "{d}/space.toml", "-d", "{d}/data.csv", "-o", "{d}/o.nc", "--samples", "0"],
        2,
        ["--samples"],
    ),
    (
        "fit-samples-huge",
        [
            "fit",
            "-s",
            "{d}/space.toml",
            "-d",
            "{d}/data.csv",
            "-o",
            "{d}/o.nc",
            "--samples",
            str(10**9),
        ],
        2,
        ["GiB", "fewer draws"],
    ),
    (
        "fit-method-bogus",
        ["fit", "-s", "{d}/space.toml", "-d", "{d}/data.csv", "-o", "{d}/o.nc", "-m", "bogus"],
        2,
        ["--method"],
    ),
    ("score-top-zero", ["score", "-p", "{d}/p.nc", "--top", "0"], 2, ["--top"]),
    ("score-level", ["score", "-p", "{d}/p.nc", "--level", "1.5"], 2, ["--level"]),
    ("propose-k-zero", ["propose", "-p", "{d}/p.nc", "--k", "0"], 2, ["--k"]),
    ("propose-strategy", ["propose", "-p", "{d}/p.nc", "--strategy", "bogus"], 2, ["--strategy"]),
    (
        "design-pairwise-too-many-pairs",
        ["design", "-s", "{d}/h100.toml"],
        2,
        ["1,980,000 variant pairs", "kind='random'"],
    ),
    (
        "design-size-huge",
        ["design", "-s", "{d}/huge.toml", "--size", str(10**12), "--kind", "random"],
        2,
        ["max_full"],
    ),
    (
        "score-top-huge",
        ["score", "-p", "{d}/huge.nc", "--top", str(10**12), "-o", "{d}/g.parquet"],
        2,
        ["MAX_FULL_GRID"],
    ),
]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_error(code: int, err: str, expected: int, parts) -> None:
    assert code == expected, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    # one error line, and it is the last word (status lines such as "fitting ... done" and
    # "warning: ..." lines may come before it)
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for part in parts:
        assert part in errors[0], f"{part!r} not in {errors[0]!r}"


@pytest.mark.parametrize(
    "argv, code, parts", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_hostile(ws, capsys, argv, code, parts):
    before = snapshot(ws)
    got, _, err = run_cli([a.format(d=ws) for a in argv], capsys)
    assert_error(got, err, code, [p.format(d=ws) for p in parts])
    assert snapshot(ws) == before


# ---------------------------------------------------------------------------- API cases
def _space(ws):
    return LayoutSpace.from_toml(ws / "space.toml")


def _post(ws):
    return Posterior.load(ws / "p.nc")


def _obs(ws):
    return Observations.from_csv(ws / "data.csv", _space(ws))


def _nan_post(ws):
    post = _post(ws)
    intercept = np.array(post.params.intercept)
    intercept[5] = np.inf
    return dataclasses.replace(post, params=post.params._replace(intercept=intercept))


API_CASES = [
    ("prior-main-1e12", lambda ws: PriorConfig(main_scale=1e12), ["main_scale", "[1e-06, 100]"]),
    ("prior-main-inf", lambda ws: PriorConfig(main_scale=math.inf), ["main_scale", "inf"]),
    ("prior-pair-nan", lambda ws: PriorConfig(pair_scale=math.nan), ["pair_scale", "nan"]),
    ("prior-intercept-negative", lambda ws: PriorConfig(intercept_scale=-1.0), ["intercept_scale"]),
    ("prior-base-rate-one", lambda ws: PriorConfig(base_rate=1.0), ["base_rate"]),
    ("prior-scale-string", lambda ws: PriorConfig(main_scale="1"), ["main_scale"]),
    ("fit-seed-negative", lambda ws: fit(_space(ws), _obs(ws), seed=-1), ["seed", str(SEED_MAX)]),
    ("fit-seed-2^64", lambda ws: fit(_space(ws), _obs(ws), seed=2**64), ["seed", str(SEED_MAX)]),
    ("fit-seed-float", lambda ws: fit(_space(ws), _obs(ws), seed=1.5), ["seed", "float"]),
    ("fit-seed-bool", lambda ws: fit(_space(ws), _obs(ws), seed=True), ["seed", "bool"]),
    ("propose-seed-2^32", lambda ws: propose(_post(ws), seed=2**32), ["seed", str(SEED_MAX)]),
    ("design-seed-negative", lambda ws: initial_design(_space(ws), seed=-1), ["seed"]),
    ("check-seed-numpy-negative", lambda ws: check_seed(np.int64(-3)), ["seed", "-3"]),
    ("space-reserved-upper", lambda ws: LayoutSpace({"upper": ["a"]}), ["'upper'", "reserved"]),
    ("space-reserved-tau", lambda ws: LayoutSpace({"tau_pair": ["a"]}), ["'tau_pair'"]),
    (
        "codes-over-2^53",
        lambda ws: Observations.from_codes(_space(ws), [[0, 0, 0]], [2**60], [0]),
        ["impressions", "2**53"],
    ),
    (
        "codes-sum-over-2^53",
        lambda ws: Observations.from_codes(_space(ws), [[0, 0, 0]] * 3, [BIG] * 3, [0] * 3),
        ["add up to more than 2**53"],
    ),
    (
        "codes-aged-sum-over-2^53",
        lambda ws: Observations.from_codes(
            _space(ws), [[0, 0, 0]] * 3, [BIG] * 3, [0] * 3, age=[1.0] * 3
        ),
        ["add up to more than 2**53"],
    ),
    (
        "frame-dup-columns",
        lambda ws: Observations.from_frame(
            pd.DataFrame(
                [["h1", "van", "none", 1, 0, 0]], columns=[*HEADER.strip().split(","), "clicks"]
            ),
            _space(ws),
        ),
        ["'clicks'", "more than once"],
    ),
    ("save-nonfinite", lambda ws: _nan_post(ws).save(ws / "bad.nc"), ["non-finite", "intercept"]),
    ("score-nonfinite", lambda ws: score_grid(_nan_post(ws), top=3), ["non-finite"]),
    ("best-nonfinite", lambda ws: best_layout(_nan_post(ws)), ["non-finite"]),
    ("propose-nonfinite", lambda ws: propose(_nan_post(ws), seed=0), ["non-finite"]),
    ("load-dir", lambda ws: Posterior.load(ws / "adir"), ["adir", "is a directory"]),
    ("toml-dir", lambda ws: LayoutSpace.from_toml(ws / "adir"), ["adir", "is a directory"]),
    ("fit-samples-memory", lambda ws: fit(_space(ws), _obs(ws), num_samples=10**9), ["GiB"]),
]


@pytest.mark.parametrize("make, parts", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_hostile(ws, make, parts):
    before = snapshot(ws)
    with pytest.raises(ValueError) as info:
        make(ws)
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert snapshot(ws) == before


def test_reserved_names_are_listed_in_the_message():
    with pytest.raises(ValueError) as info:
        LayoutSpace({"p_best": ["a"]})
    assert all(name in str(info.value) for name in RESERVED_NAMES)


def test_non_reserved_internal_names_work_end_to_end(tmp_path):
    """Posterior dimension names are renamed in the file, so they stay valid components."""
    # same shape as SPACE, so the Laplace kernel compiled for the fixture is reused
    text = SPACE.replace("headline", "chain").replace("image", "draw").replace("reviews", "pair")
    (tmp_path / "space.toml").write_text(text)
    data = DATA.replace("headline", "chain").replace("image", "draw").replace("reviews", "pair")
    (tmp_path / "data.csv").write_text(data)
    space = LayoutSpace.from_toml(tmp_path / "space.toml")
    post = fit(space, Observations.from_csv(tmp_path / "data.csv", space), seed=0, num_samples=50)
    post.save(tmp_path / "p.nc")
    frame = score_grid(Posterior.load(tmp_path / "p.nc")).to_pandas()
    assert list(frame.columns) == [
        "index",
        "chain",
        "draw",
        "pair",
        "mean",
        "lower",
        "upper",
        "p_best",
    ]
    assert set(frame["chain"]) == {"h1", "h2", "h3"}


# ------------------------------------------------------------------- subprocess cases
RUNNER = textwrap.dedent(
    """
    import contextlib, io, json, resource, signal, sys
    limits, cases = json.loads(sys.argv[1])
    # Limits are set here, before JAX starts its threads (a preexec_fn would fork a
    # multithreaded parent). With SIGXFSZ ignored, a write beyond RLIMIT_FSIZE fails with
    # EFBIG, as a write to a full disk fails with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for which, value in limits:
        resource.setrlimit(getattr(resource, which), (value, value))
    from layoutopt.cli import main
    results = {}
    for case_id, argv in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        results[case_id] = [code, err.getvalue()]
    print(json.dumps(results))
    """
)


def run_isolated(cases, cwd: Path, limits: dict, timeout: float) -> dict:
    """Run CLI cases in one subprocess under resource limits (``{"RLIMIT_AS": bytes}``);
    return ``{id: [exit code, stderr]}``. A hang fails through the timeout."""
    payload = json.dumps([list(limits.items()), [[c[0], c[1]] for c in cases]])
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, payload],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


MEMORY_LIMIT = 4 * 2**30
# Each of these would allocate tens of GiB or run for hours if its guard regressed.
HEAVY_CASES = [
    (
        "fit-huge-laplace",
        ["fit", "-s", "huge.toml", "-d", "huge.csv", "-o", "o.nc"],
        2,
        ["78,401 parameters", "'svi'", "additive"],
    ),
    (
        "fit-huge-nuts",
        ["fit", "-s", "huge.toml", "-d", "huge.csv", "-o", "o.nc", "-m", "nuts"],
        2,
        ["78,401 parameters", "(20,000)"],
    ),
    ("score-huge-top3", ["score", "-p", "huge.nc", "--top", "3"], 2, ["10^20", "layoutopt best"]),
    ("score-huge-parquet", ["score", "-p", "huge.nc", "-o", "g.parquet"], 2, ["10^20"]),
    (
        "propose-huge-greedy",
        ["propose", "-p", "huge.nc", "--strategy", "greedy"],
        2,
        ['strategy="greedy"', "thompson"],
    ),
    ("propose-huge-thompson", ["propose", "-p", "huge.nc"], 2, ["branch-and-bound", "hill"]),
    (
        "propose-huge-top-two",
        ["propose", "-p", "huge.nc", "--strategy", "top_two"],
        2,
        ["branch-and-bound"],
    ),
    ("best-huge", ["best", "-p", "huge.nc"], 2, ["branch-and-bound"]),
]


@pytest.fixture(scope="module")
def heavy_results(ws):
    before = snapshot(ws)
    results = run_isolated(HEAVY_CASES, ws, {"RLIMIT_AS": MEMORY_LIMIT}, timeout=240)
    assert snapshot(ws) == before
    return results


@pytest.mark.parametrize(
    "case_id, code, parts",
    [(c[0], c[2], c[3]) for c in HEAVY_CASES],
    ids=[c[0] for c in HEAVY_CASES],
)
def test_heavy_inputs_refused_under_memory_limit(heavy_results, case_id, code, parts):
    got, err = heavy_results[case_id]
    assert_error(got, err, code, parts)


def test_fit_size_api_refuses_before_allocating(ws):
    """The API refusals of a too-large SVI full-rank guide and dense Laplace Hessian, in a
    memory-limited subprocess."""
    script = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))
        from layoutopt.data import Observations
        from layoutopt.infer.fitting import LaplaceOptions, SviOptions, fit
        from layoutopt.model.space import LayoutSpace
        space = LayoutSpace.from_toml("mid.toml")
        obs = Observations.from_csv("mid.csv", space)
        for method, options in [
            ("svi", SviOptions(guide="full")),
            ("laplace", LaplaceOptions(solver="dense")),  # "auto" fits it low-rank
        ]:
            try:
                fit(space, obs, method=method, seed=0, options=options)
            except ValueError as err:
                print(err)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    svi, dense = proc.stdout.strip().splitlines()
    assert "6,841 parameters" in svi and "guide='lowrank'" in svi
    assert "6,841 parameters" in dense and "(4,000)" in dense and "solver='lowrank'" in dense


# A size limit on written files stands in for a full disk: writes beyond it fail with EFBIG
# (SIGXFSZ ignored), which is what a full disk (ENOSPC) looks like to the writer.
DISK_CASES = [
    (
        "disk-full-posterior",
        ["fit", "-s", "space.toml", "-d", "data.csv", "-o", "old.nc"],
        1,
        ["cannot write", "old.nc"],
    ),
    (
        "disk-full-parquet",
        ["score", "-p", "p.nc", "-o", "old.parquet"],
        1,
        ["cannot write", "old.parquet"],
    ),
    ("disk-full-csv", ["score", "-p", "p.nc", "-o", "old.csv"], 1, ["cannot write", "old.csv"]),
    (
        "disk-full-propose",
        ["propose", "-p", "p.nc", "-o", "old.csv", "--strategy", "greedy"],
        1,
        ["cannot write", "old.csv"],
    ),
]


@pytest.fixture(scope="module")
def disk_results(ws):
    (ws / "old.parquet").write_bytes(b"PAR1 earlier output")
    before = snapshot(ws)
    limits = {"RLIMIT_FSIZE": 120, "RLIMIT_AS": MEMORY_LIMIT}
    results = run_isolated(DISK_CASES, ws, limits, timeout=240)
    assert snapshot(ws) == before  # old files intact, no temporary file left
    return results


@pytest.mark.slow
@pytest.mark.parametrize(
    "case_id, code, parts", [(c[0], c[2], c[3]) for c in DISK_CASES], ids=[c[0] for c in DISK_CASES]
)
def test_full_disk_leaves_old_file_intact(disk_results, case_id, code, parts):
    got, err = disk_results[case_id]
    assert_error(got, err, code, parts)


def _can_mount() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _can_mount(),
    reason="needs a private mount namespace (root and unshare) for a read-only file system; "
    "permission bits do not stop root, so nothing else makes a directory really read-only",
)
def test_read_only_directory(ws, tmp_path):
    """A read-only tmpfs in a private mount namespace (fails for root too, and vanishes with
    the process): every command refuses before working, naming the path."""
    ro = tmp_path / "ro"
    ro.mkdir()
    cases = [
        ("fit", ["fit", "-s", "space.toml", "-d", "data.csv", "-o", f"{ro}/p.nc"]),
        ("score", ["score", "-p", "p.nc", "-o", f"{ro}/g.parquet"]),
        ("design", ["design", "-s", "space.toml", "-o", f"{ro}/d.csv"]),
        ("propose", ["propose", "-p", "p.nc", "-o", f"{ro}/keep.txt.csv"]),
    ]
    payload = json.dumps([[], cases])
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {ro} && echo old > {ro}/keep.txt && "
        f"mount -o remount,ro {ro} && "
        f"{sys.executable} -c {shlex.quote(RUNNER)} {shlex.quote(payload)} && "
        f"echo '---' && ls -A {ro} && cat {ro}/keep.txt"
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=ws, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results_text, listing = proc.stdout.split("---\n")
    results = json.loads(results_text.strip().splitlines()[-1])
    for case_id, argv in cases:
        code, err = results[case_id]
        assert_error(code, err, 2, [argv[-1], "Read-only file system"])
    assert listing.split() == ["keep.txt", "old"]  # nothing left behind, old file intact
