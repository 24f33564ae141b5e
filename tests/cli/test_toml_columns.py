"""A [columns] table in the space TOML maps the log's names, for fit, design and campaigns;
--column wins name by name; a malformed table is one error line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layoutopt import Campaign, LayoutSpace
from layoutopt.cli.app import main
from layoutopt.data.mapping import read_space_toml

SPACE = LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b"]})


def _files(tmp_path, columns: str) -> str:
    rng = np.random.default_rng(0)
    n = 300
    log = pd.DataFrame(
        {
            "title": rng.choice(["h1", "h2"], n),
            "image": rng.choice(["a", "b"], n),
            "click": (rng.random(n) < 0.2).astype(int),
            "clk": np.zeros(n, int),
        }
    )
    log.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "space.toml").write_text(SPACE.to_toml() + "\n" + columns)
    return str(tmp_path)


MAPPING = '[columns]\nheadline = "title"\nclicks = "click"\n'


def test_read_space_toml_splits_the_mapping_from_the_space(tmp_path):
    d = _files(tmp_path, MAPPING)
    space, columns = read_space_toml(f"{d}/space.toml")
    assert space == SPACE and columns == {"headline": "title", "clicks": "click"}
    (tmp_path / "plain.toml").write_text(SPACE.to_toml())
    assert read_space_toml(tmp_path / "plain.toml") == (SPACE, None)
    (tmp_path / "bad.toml").write_text(SPACE.to_toml() + "\n[columns]\nclicks = 3\n")
    with pytest.raises(ValueError, match=r"bad.toml: \[columns\] must map.*clicks = 3"):
        read_space_toml(tmp_path / "bad.toml")


def test_fit_and_design_read_the_mapping_and_column_wins(tmp_path, capsys):
    d = _files(tmp_path, MAPPING)
    log = pd.read_csv(f"{d}/log.csv")
    base = ["fit", "-s", f"{d}/space.toml", "-d", f"{d}/log.csv", "-o", f"{d}/p.nc"]
    assert main(base) == 0
    out = capsys.readouterr()
    assert f"300 impressions, {int(log['click'].sum())} clicks" in out.out
    assert main([*base, "--column", "clicks=clk"]) == 0  # the flag wins over [columns]
    assert "300 impressions, 0 clicks" in capsys.readouterr().out
    assert main(["design", "-s", f"{d}/space.toml"]) == 0
    (tmp_path / "space.toml").write_text(SPACE.to_toml() + '\n[columns]\nclicks = ["x"]\n')
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "[columns] must map" in err and "Traceback" not in err


def test_campaign_init_keeps_the_mapping_for_every_ingest(tmp_path, capsys):
    d = _files(tmp_path, MAPPING)
    db = f"{d}/c.db"
    assert main(["campaign", "init", "--db", db, "-s", f"{d}/space.toml"]) == 0
    assert main(["campaign", "ingest", "--db", db, f"{d}/log.csv"]) == 0
    with Campaign.open(db) as camp:
        assert camp.columns == {"clicks": "click", "headline": "title"}
        obs = camp.observations()
        assert int(obs.impressions.sum()) == 300
        assert int(obs.clicks.sum()) == int(pd.read_csv(f"{d}/log.csv")["click"].sum())
        camp.set_columns(None)
        assert camp.columns is None
        with pytest.raises(ValueError, match="columns must map"):
            camp.set_columns({"clicks": 1})


def test_the_space_reader_leaves_the_readers_tables_out(tmp_path):
    # a data scientist opening the campaign's space file with the library alone
    settings = '\n[objective]\nclicks = 1\n\n[control]\nheadline = "h1"\nimage = "a"\n'
    d = _files(tmp_path, MAPPING + settings)
    assert LayoutSpace.from_toml(f"{d}/space.toml") == SPACE
    (tmp_path / "bad.toml").write_text(SPACE.to_toml() + '\n[colums]\nclicks = "click"\n')
    with pytest.raises(ValueError, match=r"bad.toml: unknown top-level key\(s\) \['colums'\]"):
        LayoutSpace.from_toml(tmp_path / "bad.toml")
