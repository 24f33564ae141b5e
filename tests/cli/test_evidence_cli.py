"""The command line says "no evidence yet" in one line (best, propose, campaign fit / best /
status / propose / report) when the data cannot tell layouts apart, and explores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layoutopt import LayoutSpace
from layoutopt.cli.app import main

SPACE = LayoutSpace({"headline": ["h1", "h2", "h3"], "image": ["a", "b"]})
LINE = "no evidence yet:"


def _files(tmp_path, clicks):
    frame = SPACE.frame(SPACE.codes(np.arange(SPACE.size))).drop(columns="index")
    frame["impressions"] = 300
    frame["clicks"] = clicks
    (tmp_path / "space.toml").write_text(SPACE.to_toml())
    frame.to_csv(tmp_path / "r.csv", index=False)
    return str(tmp_path)


def test_best_and_propose_say_no_evidence_once(tmp_path, capsys):
    d = _files(tmp_path, 0)  # no clicks anywhere: nothing tells the layouts apart
    assert main(["fit", "-s", f"{d}/space.toml", "-d", f"{d}/r.csv", "-o", f"{d}/p.nc"]) == 0
    capsys.readouterr()
    assert main(["best", "-p", f"{d}/p.nc"]) == 0
    assert capsys.readouterr().out.count(LINE) == 1
    assert main(["propose", "-p", f"{d}/p.nc", "-k", "3", "--strategy", "greedy"]) == 0
    out = capsys.readouterr()
    assert out.err.count(LINE) == 1 and "uniform layouts" in out.err
    batch = pd.read_csv(pd.io.common.StringIO(out.out))
    assert len(batch) == 3 and np.allclose(batch["weight"], 1 / 3)


def test_campaign_commands_say_no_evidence_and_a_clear_winner_does_not(tmp_path, capsys):
    d = _files(tmp_path, 0)
    db = f"{d}/c.db"
    assert main(["campaign", "init", "--db", db, "-s", f"{d}/space.toml"]) == 0
    assert main(["campaign", "ingest", "--db", db, f"{d}/r.csv"]) == 0
    capsys.readouterr()
    for argv in (["fit"], ["best"], ["status"]):
        assert main(["campaign", *argv, "--db", db]) == 0
        assert capsys.readouterr().out.count(LINE) == 1, argv
    assert main(["campaign", "propose", "--db", db, "-k", "3"]) == 0
    assert capsys.readouterr().err.count(LINE) == 1
    assert main(["campaign", "report", "--db", db, "-o", f"{d}/r.html"]) == 0
    assert (tmp_path / "r.html").read_text().count(LINE) == 1
    # one layout far ahead: the pick is named without the line
    d = _files(tmp_path / "win", [90, 3, 3, 3, 3, 3]) if (tmp_path / "win").mkdir() is None else d
    db = f"{d}/c.db"
    assert main(["campaign", "init", "--db", db, "-s", f"{d}/space.toml"]) == 0
    assert main(["campaign", "ingest", "--db", db, f"{d}/r.csv"]) == 0
    assert main(["campaign", "fit", "--db", db]) == 0
    assert LINE not in capsys.readouterr().out
