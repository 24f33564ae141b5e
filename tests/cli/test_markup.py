"""User text that looks like Rich markup prints as typed; store passwords never print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layoutopt.cli.app import main
from layoutopt.cli.console import shown_target

SPACE = """\
[components]
headline = ["[/]", "[bold red]boss[/bold red]", "plain"]
image = ["van", "[red]"]
"""
CLICKS = {
    ("[/]", "van"): 160,
    ("[/]", "[red]"): 200,
    ("[bold red]boss[/bold red]", "van"): 360,
    ("[bold red]boss[/bold red]", "[red]"): 180,
    ("plain", "van"): 140,
    ("plain", "[red]"): 150,
}


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def results(tmp_path) -> Path:
    (tmp_path / "space.toml").write_text(SPACE)
    rows = ["headline,image,impressions,clicks"]
    rows += [f'"{h}","{i}",4000,{c}' for (h, i), c in CLICKS.items()]
    (tmp_path / "results.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


@pytest.mark.parametrize("name", ["[/]", "[bold red]boss[/bold red]", "[link=x]a"])
def test_campaign_names_print_as_typed(capsys, tmp_path, store_target, name):
    (tmp_path / "space.toml").write_text(SPACE)
    code, out, err = run(
        capsys, "campaign", "init", "-s", tmp_path / "space.toml", "--db", store_target,
        "--name", name,
    )  # fmt: skip
    assert code == 0, err
    assert repr(name) in out
    code, out, err = run(capsys, "campaign", "status", "--db", store_target, "--name", name)
    assert code == 0, err
    assert f"campaign {name!r} in" in out


def test_labels_print_as_typed_through_fit_and_best(capsys, results):
    db = results / "c.db"
    assert run(capsys, "campaign", "init", "-s", results / "space.toml", "--db", db)[0] == 0
    assert run(capsys, "campaign", "ingest", "--db", db, results / "results.csv")[0] == 0
    code, out, err = run(capsys, "campaign", "fit", "--db", db)
    assert code == 0, err
    code, out, err = run(capsys, "campaign", "best", "--db", db)
    assert code == 0, err
    assert "[bold red]boss[/bold red]" in out  # the true best headline, printed literally
    code, out, err = run(capsys, "campaign", "best", "--db", db, "--json")
    assert json.loads(out)["layout"]["headline"] == "[bold red]boss[/bold red]"
    code, out, err = run(capsys, "design", "-s", results / "space.toml")
    assert code == 0 and "[/]" in out


def test_passwords_never_print(capsys, tmp_path, postgres_db):
    # the test server trusts local connections, so any password in the URL is accepted
    url = postgres_db.replace("postgresql://postgres@", "postgresql://postgres:S3cretPw@")
    (tmp_path / "space.toml").write_text(SPACE)
    code, out, err = run(capsys, "campaign", "init", "-s", tmp_path / "space.toml", "--db", url)
    assert code == 0, err
    assert "postgres:***@" in out
    code, out2, err2 = run(capsys, "campaign", "status", "--db", url)
    assert code == 0, err2
    code, out3, err3 = run(capsys, "campaign", "status", "--db", url, "--name", "nope")
    assert code == 2
    assert "S3cretPw" not in out + err + out2 + err2 + out3 + err3


@pytest.mark.parametrize(
    "target, shown",
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql+psycopg://u:p@ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql://u@h/db?sslmode=require&password=pw", "postgresql://u@h/db?sslmode=require&password=***"),
        ("error: postgresql://a:b@h/x: refused", "error: postgresql://a:***@h/x: refused"),
        ("campaign.db", "campaign.db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)  # fmt: skip
def test_shown_target(target, shown):
    assert shown_target(target) == shown
