"""Size of the pairwise initial design against its lower bound, for a table of spaces.

For each space prints one markdown row: the cardinalities, the number of (allowed) layouts,
the lower bound ``max n_k * n_l`` over component pairs (counting only coverable pairs), the
rows of :func:`layoutopt.decide.design.initial_design` (``kind="pairwise"``) for seeds 0-4
(seed 0 and
the smallest), and the seconds one call takes. Every design is checked to cover all coverable
pairs before it is reported.

Usage::

    python experiments/design_sizes.py            # prints the table in docs/design.md
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import layoutopt.model.space
from layoutopt.decide.design import UncoverablePairsWarning, initial_design
from layoutopt.model.space import LayoutSpace

DEMO = Path(layoutopt.model.space.__file__).parent / "examples" / "demo_space.toml"


def _space(card, forbidden=None):
    comps = {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)}
    return LayoutSpace(comps, forbidden=forbidden)


def spaces():
    demo = LayoutSpace.from_toml(DEMO)
    demo_free = LayoutSpace(dict(zip(demo.components, demo.variants, strict=True)))
    return [
        ("Hill et al. 2017: 3 widgets x 8", _space((8, 8, 8))),
        ("demo callout, no rule", demo_free),
        ("demo callout, logo_only+quote forbidden", demo),
        ("5 x 5", _space((5,) * 5)),
        ("4^10", _space((4,) * 10)),
        ("3^13", _space((3,) * 13)),
        ("10 x 10", _space((10,) * 10)),
        (
            "6,5,6,2,3 + 3 rules",
            _space(
                (6, 5, 6, 2, 3),
                [
                    {"c0": "v0", "c1": "v0"},
                    {"c2": "v5", "c4": "v2"},
                    {"c0": "v1", "c2": "v1", "c3": "v1"},
                ],
            ),
        ),
        ("5^20", _space((5,) * 20)),
    ]


def _covered(space, df) -> bool:
    codes = np.stack([df[c].cat.codes.to_numpy() for c in space.components], axis=1)
    got = sum(
        len({(a, b) for a, b in codes[:, [j, m]]})
        for j, m in itertools.combinations(range(space.num_components), 2)
    )
    total = sum(
        space.cardinalities[j] * space.cardinalities[m]
        for j, m in itertools.combinations(range(space.num_components), 2)
    )
    return got == total - len(df.attrs["uncoverable_pairs"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 to try")
    args = parser.parse_args(argv)
    print(
        "| space | cardinalities | layouts (allowed) | lower bound | rows, seed 0 "
        f"| fewest rows, seeds 0-{args.seeds - 1} | seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, space in spaces():
        sizes, seconds = [], []
        for seed in range(args.seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UncoverablePairsWarning)
                t0 = time.perf_counter()
                df = initial_design(space, seed=seed)
                seconds.append(time.perf_counter() - t0)
            if not _covered(space, df):
                print(f"{name}: design misses a pair", file=sys.stderr)
                return 1
            sizes.append(len(df))
        card = "x".join(str(n) for n in space.cardinalities)
        print(
            f"| {name} | {card} | {space.size:,} ({space.num_allowed:,}) "
            f"| {df.attrs['lower_bound']} | {sizes[0]} | {min(sizes)} "
            f"| {np.median(seconds):.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
