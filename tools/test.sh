#!/usr/bin/env bash
# The project's test command: every notebook under nbdev-test (cells flagged `slow` skipped), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
nbdev-test --n-workers 2 --timing
pytest -q -p no:cacheprovider tests
