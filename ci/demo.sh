#!/usr/bin/env bash
# The demo: the quickstart example on 3 ranks under rankview's launcher.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
cargo build -p rankview-launcher
target/debug/rankview run -n "${RANKS:-3}" --example quickstart
