#!/usr/bin/env bash
# Starts Vigil on embedded SQLite (./data/vigil.db) at 127.0.0.1:8080 with the example rules
# built from source and loaded. Extra arguments go to `vigil serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The example rules get their own target dir, whatever CARGO_TARGET_DIR says.
rules_dir=rules/target/wasm32-unknown-unknown/release
(cd rules && cargo build --release --target wasm32-unknown-unknown --target-dir target)
exec cargo run --release -p vigil-engine --bin vigil -- serve --rules-dir "$rules_dir" "$@"
