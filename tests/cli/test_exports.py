"""Files the CLI writes for people to open: CSV cells neutralised for spreadsheets and read
back as the labels they stand for; a campaign export written whole, never into a folder of
someone else's files."""

from __future__ import annotations

import pandas as pd

from layoutopt.cli.app import main

SPACE = '[components]\nheadline = ["=1+2", "-5% off", "@home"]\nimage = ["+plus", "van"]\n'


def run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_csv_outputs_neutralise_formulas_and_round_trip(tmp_path, capsys):
    space, db = tmp_path / "space.toml", tmp_path / "c.db"
    space.write_text(SPACE)
    assert (
        run(capsys, "design", "--space", space, "--kind", "full", "-o", tmp_path / "d.csv")[0] == 0
    )
    text = (tmp_path / "d.csv").read_text()
    assert "'=1+2" in text and "'-5% off" in text and "'@home" in text and "'+plus" in text
    assert "\n=" not in text and ",=" not in text  # no cell starts a formula
    design = pd.read_csv(tmp_path / "d.csv")
    design["impressions"], design["clicks"] = 1000, [30, 40, 50, 60, 70, 80]
    design.to_csv(tmp_path / "r.csv", index=False)  # the quoted cells, as a user saves them
    assert run(capsys, "campaign", "init", "--space", space, "--db", db)[0] == 0
    code, err = run(capsys, "campaign", "ingest", "--db", db, tmp_path / "r.csv")
    assert code == 0, err  # the quoted labels are read back as the space's labels
    code, err = run(capsys, "campaign", "propose", "--db", db, "--k", "2", "--seed", "1",
                    "-o", tmp_path / "next.csv")  # fmt: skip
    assert code == 0, err
    cells = pd.read_csv(tmp_path / "next.csv")[["headline", "image"]].to_numpy().ravel()
    assert not any(str(c).startswith(("=", "+", "-", "@")) for c in cells), cells


def test_export_replaces_an_earlier_export_and_refuses_other_files(tmp_path, capsys):
    space, db, out = tmp_path / "space.toml", tmp_path / "c.db", tmp_path / "export"
    space.write_text('[components]\na = ["a1", "a2"]\nb = ["b1", "b2"]\n')
    rows = pd.DataFrame({"a": ["a1", "a2"], "b": ["b1", "b2"], "impressions": 100, "clicks": 5})
    rows.to_csv(tmp_path / "r.csv", index=False)
    assert run(capsys, "campaign", "init", "--space", space, "--db", db)[0] == 0
    assert run(capsys, "campaign", "ingest", "--db", db, tmp_path / "r.csv")[0] == 0
    assert run(capsys, "campaign", "export", "--db", db, "-o", out)[0] == 0
    names = ["history.parquet", "observations.parquet", "proposals.parquet"]
    assert sorted(p.name for p in out.iterdir()) == names
    code, err = run(capsys, "campaign", "export", "--db", db, "-o", out)
    assert code == 0 and "replacing the earlier export" in err, err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = run(capsys, "campaign", "export", "--db", db, "-o", out)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "notes.txt" in errors[0], err
    assert "not a layoutopt export" in errors[0] and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
