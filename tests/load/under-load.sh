#!/usr/bin/env bash
# Run end-to-end test binaries several times while busy loops hold every
# core, and count the passes: the suite's tests must hold on a loaded
# machine (issue: deadlines, "tests that hold on a loaded machine").
#
#   bash tests/load/under-load.sh [RUNS] [BUSY] [TEST ...]
#
# Defaults: 5 runs, 8 busy loops (plain `sh -c 'while :; do :; done'` at
# normal priority), and the fault, limit and presence tests
# (plugin_faults, limits, chat_channel). Builds the tests first, without
# load. Exits non-zero unless every run of every test passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
busy=${2:-8}
shift 2 2>/dev/null || shift $#
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(plugin_faults limits chat_channel)
args=()
for test in "${tests[@]}"; do args+=(--test "$test"); done
cargo test --release -p plume "${args[@]}" --no-run
pids=()
for _ in $(seq 1 "$busy"); do sh -c 'while :; do :; done' & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
failed=0
for test in "${tests[@]}"; do
    passed=0
    for run in $(seq 1 "$runs"); do
        started=$(date +%s)
        if RUST_BACKTRACE=0 cargo test --release -p plume --test "$test" >"target/under-load-$test-$run.log" 2>&1; then
            passed=$((passed + 1)); outcome=passed
        else
            failed=1; outcome="FAILED (target/under-load-$test-$run.log)"
        fi
        echo "$test run $run of $runs beside $busy busy loops: $outcome in $(( $(date +%s) - started )) s"
    done
    echo "$test: $passed of $runs passed"
done
exit $failed
