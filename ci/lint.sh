#!/usr/bin/env bash
# Formatting, lints and docs, all with warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
