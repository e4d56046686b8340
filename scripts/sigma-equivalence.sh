#!/usr/bin/env bash
# Regenerates the Sigma equivalence fixture, tests/fixtures/sigma/expected.json: what
# rsigma 0.23 (rsigma-eval's Engine and CorrelationEngine, the engines of the `rsigma` CLI)
# matches on tests/fixtures/sigma/corpus.ndjson (written by scripts/sigma-corpus.py) for
# the peer's rules (one deployment, tests/fixtures/sigma/peer) and each file of rules/sigma.
# The tests (rules/sigma_evaluator/tests/equivalence.rs natively, tests/all/sigma_equivalence.rs
# on a server) check that Vigil matches exactly those events and fires for the same groups.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
peer=$(ls "$root"/tests/fixtures/sigma/peer/*.yml | sort | paste -sd, -)
args=("peer=$peer")
for f in "$root"/rules/sigma/*.yml; do
    args+=("$(basename "$f" .yml)=$f")
done
(
    cd rules/sigma_evaluator
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}/sigma-evaluator-native \
        cargo run --quiet --locked --example rsigma_reference -- "$root/tests/fixtures/sigma/corpus.ndjson" "${args[@]}"
) > tests/fixtures/sigma/expected.json.tmp
mv tests/fixtures/sigma/expected.json.tmp tests/fixtures/sigma/expected.json
echo "wrote tests/fixtures/sigma/expected.json"
