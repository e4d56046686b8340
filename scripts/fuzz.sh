#!/usr/bin/env bash
# Runs a cargo-fuzz target of fuzz/ for SECONDS of fuzzing (every target, one after another,
# for `all`) and prints how long each one ran. The build comes first and is not counted.
# Usage: scripts/fuzz.sh TARGET|all SECONDS
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); works on the stable toolchain with
# `--sanitizer none` (set FUZZ_TOOLCHAIN=nightly to use nightly, FUZZ_SANITIZER=address for
# ASan there; FUZZ_ARGS adds libFuzzer flags, e.g. "-fork=1 -ignore_crashes=1" to keep going
# after a crash). New corpus entries go to fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target=${1:?usage: scripts/fuzz.sh TARGET|all SECONDS}
secs=${2:?usage: scripts/fuzz.sh TARGET|all SECONDS}
toolchain=${FUZZ_TOOLCHAIN:+"+$FUZZ_TOOLCHAIN"}
sanitizer=${FUZZ_SANITIZER:-none}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi
if [ "$target" = all ]; then
    mapfile -t targets < <(cargo $toolchain fuzz list)
else
    targets=("$target")
fi
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    cargo $toolchain fuzz build --sanitizer "$sanitizer" "$t"
    start=$(date +%s)
    rc=0
    cargo $toolchain fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 ${FUZZ_ARGS:-} || rc=$?
    end=$(date +%s)
    echo "fuzz: $t ran $((end - start)) s (asked for $secs s), exit status $rc"
    [ "$rc" -eq 0 ] || status=$rc
done
exit "$status"
