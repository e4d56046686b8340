#!/usr/bin/env bash
# Starts Vigil on embedded SQLite (./data/vigil.db) at 127.0.0.1:8080 with the example rules
# built from source and loaded. Extra arguments go to `vigil serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
rules_dir=rules/target/wasm32-unknown-unknown/release
if [[ -f rules/Cargo.toml ]]; then
    (cd rules && cargo build --release --target wasm32-unknown-unknown)
fi
exec cargo run --release -p vigil-engine --bin vigil -- serve --rules-dir "$rules_dir" "$@"
