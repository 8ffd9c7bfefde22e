#!/usr/bin/env bash
# Formatting, lints and docs, all with warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
# One MSRV: every crate takes rust-version from the workspace.
for manifest in Cargo.toml macros/Cargo.toml launcher/Cargo.toml; do
    if ! grep -qx 'rust-version.workspace = true' "$manifest"; then
        echo "ci/lint.sh: $manifest must say rust-version.workspace = true (one MSRV, set in Cargo.toml)" >&2
        exit 1
    fi
done
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
