"""The Open Bandit Dataset sample that layoutopt ships (docs/real_log.md), from raw rows to a
fitted campaign on the command line: no --column (the space file's [columns] table), no
aggregation by hand; the model says it has no evidence yet."""

from __future__ import annotations

from pathlib import Path

import layoutopt as lo
from layoutopt.cli.app import main

OBD = Path(lo.__file__).parent / "examples" / "obd"
LINE = "no evidence yet:"


def test_the_shipped_log_through_the_campaign_commands(tmp_path, capsys):
    db = str(tmp_path / "obd.db")
    assert main(["campaign", "init", "--db", db, "-s", str(OBD / "space.toml")]) == 0
    assert main(["campaign", "ingest", "--db", db, str(OBD / "random_all.csv.gz")]) == 0
    out = capsys.readouterr()
    assert "10,000 impressions" in out.out and "38 clicks" in out.out
    assert out.err.count("warning:") == 1 and "'user_feature_0'" in out.err  # extras, once
    assert main(["campaign", "fit", "--db", db, "--additive"]) == 0
    out = capsys.readouterr().out
    assert "on 240 layouts, 10,000 impressions" in out and out.count(LINE) == 1
    assert main(["campaign", "status", "--db", db]) == 0
    assert capsys.readouterr().out.count(LINE) == 1
    with lo.Campaign.open(db) as camp:
        post = camp.posterior()
        assert post.params.pair == () and post.prior.base_rate == 38 / 10_000
        assert camp.columns == {"clicks": "click", "item": "item_id"}
    # the same file straight into `fit` and `best`, the mapping read from the space file
    p = str(tmp_path / "p.nc")
    argv = ["fit", "-s", str(OBD / "space.toml"), "-d", str(OBD / "random_all.csv.gz")]
    assert main([*argv, "-o", p, "--additive"]) == 0
    assert "10,000 impressions, 38 clicks" in capsys.readouterr().out
    assert main(["best", "-p", p]) == 0
    assert capsys.readouterr().out.count(LINE) == 1
