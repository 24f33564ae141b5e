"""Every ```python block of README.md and docs/*.md runs, as a reader would paste it.

The blocks of one page run in order in one namespace (a later block continues an earlier
one, as in one interpreter), in a fresh temporary directory prepared with the files the
pages name: ``space.toml`` (the demo space), ``results.csv`` and ``round0.csv`` (its
pairwise design with clicks drawn from the demo world, seeded) and ``events.parquet`` (an
impression log of that design). Nothing else is defined for them: a name a page uses
without defining it is a failure of the page.

A block that ends with an expression followed by ``# ...`` comment lines shows its output:
the expression's printed value must equal those lines (the blocks that show output are
seeded, hence deterministic).

``KNOWN`` lists the blocks that fail today and why; the test holds the failing set equal to
it, so a page that is fixed, or a block that starts failing, fails the test until the table
is updated.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layoutopt.decide.design import initial_design
from layoutopt.sim.simulate import SyntheticWorld

# every page's blocks run in full (minutes in all): `pytest -m slow`, run by .ci/run
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)

# (page, block number from 1) -> why it fails today.
KNOWN: dict[tuple[str, int], str] = {}

# Blocks that need a cluster a test cannot start are not run (they would wait forever for a
# coordinator or a scheduler file); they are counted as not run, never as passing.
NOT_RUN = {
    ("scale.md", 2): "jax.distributed.initialize() waits for a Slurm job's coordinator",
    ("scale.md", 3): "Client(scheduler_file=...) waits for a Dask scheduler",
}


def blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order."""
    return BLOCK.findall(page.read_text())


def split_output(code: str) -> tuple[str, list[str] | None]:
    """The block's code and the output its trailing ``# ...`` lines show (or None)."""
    lines = code.rstrip("\n").splitlines()
    shown = []
    while lines and lines[-1].startswith("#"):
        shown.insert(0, lines.pop()[2:] if lines[-1].startswith("# ") else lines.pop()[1:])
    body = "\n".join(lines) + "\n"
    if not shown or not body.strip():
        return code, None
    tree = ast.parse(body)
    if not isinstance(tree.body[-1], ast.Expr):
        return code, None
    return body, shown


def run_block(code: str, namespace: dict) -> list[str] | None:
    """Run one block; return what its last expression prints when it shows output."""
    body, shown = split_output(code)
    if shown is None:
        exec(compile(body, "<doc block>", "exec"), namespace)
        return None
    tree = ast.parse(body)
    last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<doc block>", "exec"), namespace)
    value = eval(compile(last, "<doc block>", "eval"), namespace)
    return [line.rstrip() for line in str(value).splitlines()]


def prepare(directory: Path) -> None:
    """The files the pages name, in ``directory``."""
    world = SyntheticWorld.demo()
    space = world.space
    (directory / "space.toml").write_text(
        (ROOT / "layoutopt" / "examples" / "demo_space.toml").read_text()
    )
    design = initial_design(space, seed=0)
    rng = np.random.default_rng(0)
    ctr = world.ctr_of_index(design["index"].to_numpy())
    results = design[list(space.components)].copy()
    results["impressions"] = 2000
    results["clicks"] = rng.binomial(2000, ctr)
    results.to_csv(directory / "results.csv", index=False)
    results.to_csv(directory / "round0.csv", index=False)
    # an impression log of the design: 200 impressions per layout over a week
    rows = results.loc[results.index.repeat(200), list(space.components)]
    served = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.uniform(0, 168, len(rows)), "h")
    clicked = rng.random(len(rows)) < np.repeat(ctr, 200)
    delay = pd.to_timedelta(rng.exponential(3.0, len(rows)), "h")
    events = rows.reset_index(drop=True)
    events["served_at"] = served
    events["clicked_at"] = pd.Series(served + delay).where(clicked)
    events = events[events["clicked_at"].isna() | (events["clicked_at"] < "2026-01-08")]
    events.to_parquet(directory / "events.parquet", index=False)


def failures(page: Path, directory: Path) -> dict[int, str]:
    """Run the page's blocks in ``directory``; the failing ones, by number, with why."""
    failed = {}
    namespace: dict = {"__name__": "__doc_block__"}
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        for number, code in enumerate(blocks(page), start=1):
            if (page.name, number) in NOT_RUN:
                continue
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    printed = run_block(code, namespace)
                _, shown = split_output(code)
                if printed is not None and printed != [s.rstrip() for s in shown]:
                    failed[number] = "output differs: " + " / ".join(printed)
            except Exception as err:  # a failing block is the finding, not a test error
                failed[number] = f"{type(err).__name__}: {err}".splitlines()[0]
    finally:
        os.chdir(cwd)
    return failed


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_doc_blocks_run(page, tmp_path):
    if not blocks(page):
        pytest.skip(f"{page.name} has no python blocks")
    prepare(tmp_path)
    failed = failures(page, tmp_path)
    expected = {n: why for (name, n), why in KNOWN.items() if name == page.name}
    assert sorted(failed) == sorted(expected), "\n".join(
        f"{page.name} block {n}: {why}" for n, why in sorted(failed.items())
    )


def test_split_output_reads_shown_lines():
    code = "x = 1\nx + 1\n# 2\n"
    assert split_output(code) == ("x = 1\nx + 1\n", ["2"])
    assert run_block(code, {}) == ["2"]
    assert split_output("y = 2  # comment\n")[1] is None
