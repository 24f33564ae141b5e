"""Options and arguments shared by the ``layoutopt`` commands, and how they are parsed.

The choices come from the library's own lists (``METHODS``, ``DESIGN_KINDS``,
``STRATEGIES``), and seeds are checked by the library's own rule, so the command line cannot
drift from the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from layoutopt.decide.design import DESIGN_KINDS
from layoutopt.decide.proposals import STRATEGIES
from layoutopt.infer.fitting import METHODS
from layoutopt.infer.posterior import Posterior
from layoutopt.util.io import check_output_path, one_line
from layoutopt.util.limits import SEED_MAX, check_seed

__all__ = [
    "DesignKind",
    "Method",
    "PosteriorOpt",
    "SeedOpt",
    "SegmentOpt",
    "SpaceOpt",
    "Strategy",
    "check_table_output",
    "load_posterior",
    "seed_option",
    "segment_arg",
]


# Choices come from the library's own lists, so the CLI cannot drift from the API.
Method = StrEnum("Method", {m: m for m in METHODS})


DesignKind = StrEnum("DesignKind", {k: k for k in DESIGN_KINDS})


Strategy = StrEnum("Strategy", {s: s for s in STRATEGIES})


SpaceOpt = Annotated[
    Path,
    typer.Option(
        "--space",
        "-s",
        help="Layout space TOML file (components, forbidden rules), e.g. "
        "layoutopt/examples/demo_space.toml.",
    ),
]


PosteriorOpt = Annotated[
    Path, typer.Option("--posterior", "-p", help="Posterior NetCDF file written by `fit`.")
]


def seed_option(value: int) -> int:
    # The library's rule and message, so the CLI and the API cannot drift apart.
    try:
        return check_seed(value, "--seed")
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        callback=seed_option,
        help=f"Random seed in [0, {SEED_MAX}] (same seed, same result).",
    ),
]


SegmentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--segment",
        help="One segment, as VARIABLE=VALUE (repeat for several context variables); "
        "default: the traffic mix observed.",
    ),
]


def segment_arg(values: Sequence[str] | None) -> dict | None:
    """``["member=prime", ...]`` as ``{"member": "prime", ...}`` (None when not given)."""
    if not values:
        return None
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name:
            raise ValueError(f"--segment {v!r}: expected VARIABLE=VALUE, e.g. member=prime")
        out[name] = value
    return out


def load_posterior(path: Path):

    try:
        return Posterior.load(path)
    except ValueError:  # already names the file
        raise
    except Exception as err:  # h5netcdf / xarray raise many types for a foreign file
        raise ValueError(
            f"{path}: not a readable posterior file ({type(err).__name__}: {one_line(err)})"
        ) from None


def check_table_output(path: Path | None) -> Path | None:

    return None if path is None else check_output_path(path, (".csv", ".parquet", ".pq"))
