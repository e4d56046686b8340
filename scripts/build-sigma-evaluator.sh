#!/usr/bin/env bash
# Builds Vigil's Sigma evaluator (rules/sigma_evaluator, its own cargo workspace) for
# wasm32-unknown-unknown and installs the module the server embeds:
#   engine/assets/sigma_evaluator.wasm          the module (committed)
#   engine/assets/sigma_evaluator.sources.sha256 SHA-256 of the sources it was built from
# A unit test (rules::sigma) recomputes the sources' SHA-256 and fails when the committed
# module is older than its sources (the evaluator or vigil-sdk changed): run this script.
# The build runs from a fixed copy of the sources, so the module does not depend on where
# the repository or the cargo home is. `--check` rebuilds and fails if the result differs from the committed module.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cargo_home=${CARGO_HOME:-$HOME/.cargo}
# The module must come out byte for byte the same from any checkout: cargo hashes the path
# of a path dependency (the SDK) into symbol names, which changes the module's layout. So
# the sources are copied to one fixed directory and built there (the path is also remapped
# away), with a target directory of its own; a lock keeps two builds from sharing it.
build=/tmp/vigil-sigma-evaluator-build
mkdir -p "$build"
exec 9>"$build.lock"
flock 9
rm -rf "$build/src"
mkdir -p "$build/src"
# The tracked files as they are in the working tree (the SDK inherits the root manifest).
git ls-files -z | tar --null -T - -cf - | (cd "$build/src" && tar -xf -)
(
    cd "$build/src/rules/sigma_evaluator"
    RUSTFLAGS="--remap-path-prefix=$build/src=/vigil --remap-path-prefix=$cargo_home=/cargo" \
        CARGO_TARGET_DIR="$build/target" nice -n 10 cargo build --release --locked --target wasm32-unknown-unknown
)
built=$build/target/wasm32-unknown-unknown/release/sigma_evaluator.wasm
sources=$(python3 - <<'PY'
import hashlib, pathlib
files = [pathlib.Path(p) for p in ["rules/sigma_evaluator/Cargo.toml", "rules/sigma_evaluator/Cargo.lock", "sdk/Cargo.toml"]]
for d in ["rules/sigma_evaluator/src", "sdk/src"]:
    files += pathlib.Path(d).rglob("*.rs")
h = hashlib.sha256()
for f in sorted(files, key=lambda p: p.as_posix()):
    h.update(f.as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
print(h.hexdigest())
PY
)
if [[ "${1:-}" == "--check" ]]; then
    cmp "$built" engine/assets/sigma_evaluator.wasm || { echo "the committed evaluator differs from a fresh build" >&2; exit 1; }
    [[ "$sources" == "$(cat engine/assets/sigma_evaluator.sources.sha256)" ]] || { echo "sources changed since the committed build" >&2; exit 1; }
    echo "sigma evaluator: committed module matches a fresh build of its sources"
    exit 0
fi
cp "$built" engine/assets/sigma_evaluator.wasm
echo "$sources" > engine/assets/sigma_evaluator.sources.sha256
echo "sigma evaluator: $(wc -c < engine/assets/sigma_evaluator.wasm) bytes, sources $sources"
