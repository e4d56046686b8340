#!/usr/bin/env bash
# Runs the whole test suite: engine unit tests, the SDK, the integration tests against real
# SQLite and the real PostgreSQL (started if it is down), the example rules' and the Sigma
# evaluator's native tests;
# first the layer check (scripts/check-layers.py, see docs/architecture.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --postgres
python3 scripts/check-layers.py --self-test
python3 scripts/check-layers.py
# Unit tests and the integration suite (examples are not linked here: clippy
# --all-targets checks that they compile), then the documentation examples (SDK, bouncer).
# Both over the whole workspace: a narrower package set resolves features differently and
# rebuilds 61 dependencies from scratch on a cold cache.
cargo test --workspace --tests
cargo test --workspace --doc
if [[ -f rules/Cargo.toml ]]; then
    (cd rules && cargo test)
fi
# The Sigma evaluator (its own workspace): native tests, and equivalence with rsigma 0.23.
if [[ -f rules/sigma_evaluator/Cargo.toml ]]; then
    (cd rules/sigma_evaluator && cargo test --locked)
fi
# The evaluator module the server embeds (engine/assets/sigma_evaluator.wasm) is built from
# source here and must be byte for byte the committed one.
if [[ -f scripts/build-sigma-evaluator.sh ]]; then
    scripts/build-sigma-evaluator.sh --check
fi
