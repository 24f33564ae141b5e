#!/usr/bin/env bash
# Replays README.md's "Running a campaign" session in a fresh temporary directory and prints
# it as the README shows it ($ command, then its output). Usage: bash docs/readme_session.sh
# (with layoutopt installed). The output is deterministic (fixed seeds), so the README block
# can be compared with, or replaced by, what this prints.
set -euo pipefail
export COLUMNS="${COLUMNS:-150}"  # the width the README shows
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$(python -c 'import layoutopt, pathlib; print(pathlib.Path(layoutopt.__file__).parent / "examples" / "demo_space.toml")')" space.toml
cp "$here/serve_synthetic.py" serve_synthetic.py
run() { echo "\$ $*"; "$@" 2>&1; }
run layoutopt campaign init --space space.toml --db signup.db --name prime-signup
run layoutopt design --space space.toml --seed 0 -o design.csv
run python serve_synthetic.py design.csv 3000 1 round0.csv
run layoutopt campaign ingest --db signup.db round0.csv
run layoutopt campaign propose --db signup.db --k 8 --seed 1 -o next.csv
run python serve_synthetic.py next.csv 3000 2 round1.csv
run layoutopt campaign ingest --db signup.db round1.csv round0.csv
run layoutopt campaign propose --db signup.db --k 8 --seed 2 -o next2.csv
run python serve_synthetic.py next2.csv 3000 3 round2.csv
run layoutopt campaign ingest --db signup.db round2.csv
run layoutopt campaign fit --db signup.db --seed 0
run layoutopt campaign best --db signup.db
run layoutopt campaign status --db signup.db
run layoutopt campaign report --db signup.db -o report.html
