#!/usr/bin/env bash
# Runs the whole test suite: engine unit tests, the SDK, the integration tests against real
# SQLite and the real PostgreSQL (started if it is down), and the example rules' native tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --postgres
cargo test --workspace
if [[ -f rules/Cargo.toml ]]; then
    (cd rules && cargo test)
fi
