#!/usr/bin/env bash
# The loom models of rankview's hand-written synchronization: the
# owner/helper hand-off of a rank's loop (src/helping.rs), the engine's
# Inbox (src/engine/inbox.rs) and the loans (src/loan.rs). Built with
# `--cfg loom`, which swaps std's primitives for loom's (src/sync.rs), in a
# target directory of its own so that the ordinary build is not redone;
# only tests named `loom_*` run (the others would use loom's primitives
# outside a model). LOOM_MAX_PREEMPTIONS bounds the search when set.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/loom"
RUSTFLAGS="--cfg loom -D warnings" cargo test -p rankview --lib --release loom_
