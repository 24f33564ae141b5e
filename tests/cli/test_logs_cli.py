"""``layoutopt fit`` / ``campaign ingest`` on raw impression logs: ``--column``, in-process."""

from __future__ import annotations

import numpy as np
import pandas as pd

from layoutopt import LayoutSpace
from layoutopt.cli.app import main

SPACE = LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b"]})


def _files(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    log = pd.DataFrame(
        {
            "title": rng.choice(["h1", "h2"], n),
            "image": rng.choice(["a", "b"], n),
            "click": (rng.random(n) < 0.2).astype(int),
            "user": rng.integers(0, 99, n),
        }
    )
    (tmp_path / "space.toml").write_text(SPACE.to_toml())
    log.to_csv(tmp_path / "log.csv", index=False)
    return log


def test_fit_and_campaign_ingest_read_mapped_impression_rows(tmp_path, capsys):
    log = _files(tmp_path)
    d = str(tmp_path)
    cols = ["--column", "headline=title", "--column", "clicks=click"]
    argv = ["fit", "-s", f"{d}/space.toml", "-d", f"{d}/log.csv", "-o", f"{d}/p.nc", *cols]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert f"400 impressions, {int(log['click'].sum())} clicks" in out.out
    assert out.err.count("warning:") == 1 and "['user']" in out.err
    assert main(["campaign", "init", "--db", f"{d}/c.db", "-s", f"{d}/space.toml"]) == 0
    assert main(["campaign", "ingest", "--db", f"{d}/c.db", f"{d}/log.csv", *cols]) == 0
    assert "['user']" in capsys.readouterr().err


def test_bad_column_options_are_one_error_line(tmp_path, capsys):
    _files(tmp_path)
    d = str(tmp_path)
    base = ["fit", "-s", f"{d}/space.toml", "-d", f"{d}/log.csv", "-o", f"{d}/p.nc"]
    for extra, words in [
        (["--column", "clicks"], "expected LAYOUTOPT_NAME=YOUR_NAME"),
        (["--column", "clicks=klick"], "no such column"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and "Traceback" not in err
