#!/usr/bin/env bash
# Formatting, lints and docs, all with warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/setup.sh
# One MSRV: every crate takes rust-version from the workspace.
for manifest in Cargo.toml macros/Cargo.toml launcher/Cargo.toml tests/programs/Cargo.toml; do
    if ! grep -qx 'rust-version.workspace = true' "$manifest"; then
        echo "ci/lint.sh: $manifest must say rust-version.workspace = true (one MSRV, set in Cargo.toml)" >&2
        exit 1
    fi
done
# The layout (docs/layout.md): no import circles, no source file over 900
# lines.
if ! command -v python3 >/dev/null 2>&1; then
    . ci/apt-install.sh
    apt_install ci/lint.sh python3
fi
for dir in src launcher/src macros/src; do
    python3 ci/layout.py "$dir" --check
done
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
