#!/usr/bin/env bash
# The benchmarks, side by side on this machine; each table goes to target/bench/ and
# BENCHMARKS.md is rebuilt from them (infra/bench/report.py) with the machine described.
#
#   ./infra/bench.sh            everything (about 15 minutes after the builds)
#   ./infra/bench.sh intake     our webhook intake against a Powertools handler
#   ./infra/bench.sh functions  cold start, memory and size of every function
#   ./infra/bench.sh sync       sync throughput, platform calls, memory (cargo bench)
#   ./infra/bench.sh fuzz       the million-case fuzzing run (infra/fuzz.sh)
#   ./infra/bench.sh storm      3,000 webhook deliveries through the local stack, a queue outage
#   ./infra/bench.sh faults     the worker killed with SIGKILL under faults, five seeds
#   ./infra/bench.sh continuations  5,000 orders synced in invocations of 1.5 s each
#   ./infra/bench.sh quota      four worker processes on one QuickBooks company, past a minute
#   ./infra/bench.sh load       2,000 schedules of 20 tenants firing in one minute (moto-bound: 10,000 would take about an hour)
#
# Figures from a shared machine are orders of magnitude; the ratios, measured in one run,
# are the result.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
what="${1:-all}"
out="$root/target/bench"
mkdir -p "$out"

bash infra/setup.sh >&2
.venv/bin/pip install -q -r infra/bench/requirements.txt >&2
export SAM_CLI_TELEMETRY=0

functions=(schedule-api webhook-intake webhook-coalescer sync-worker connection-setup sweeper)
build_functions() {
  echo "bench: building the functions (release) and syncctl..." >&2
  local args=()
  for f in "${functions[@]}"; do args+=(-p "$f"); done
  cargo build --release --locked "${args[@]}" >&2
  cargo build --locked -p infra --bin syncctl >&2
}

run() {
  case "$1" in
    intake)
      .venv/bin/python infra/bench/lambda_bench.py intake --events 300 --out "$out/intake.md" ;;
    functions)
      .venv/bin/python infra/bench/lambda_bench.py functions --out "$out/functions.md" ;;
    sync)
      cargo bench --locked -p integration-tests --bench sync \
        | grep -v '^{"Function"' | tee "$out/sync.txt" ;;
    fuzz)
      bash infra/fuzz.sh && cp target/fuzz-report.md "$out/fuzz.md" ;;
    storm)
      STORM_DELIVERIES=2000 STORM_REPORT="$out/storm.md" \
        cargo test --locked -p integration-tests --test webhooks storm -- --nocapture \
        | grep -v '^{"Function"' >&2 ;;
    faults)
      KILL_SEEDS=1,2,3,4,5 KILL_ORDERS=2000 KILL_REPORT="$out/faults.md" \
        cargo test --locked -p integration-tests --test sync killed -- --nocapture \
        | grep -v '^{' >&2 ;;
    continuations)
      CONTINUATION_ORDERS=5000 \
        cargo test --locked -p integration-tests --test sync tiny_time_budget -- --nocapture \
        | grep -v '^{' >&2 ;;
    quota)
      QUOTA_PROCESSES=4 QUOTA_CALLS=150 QUOTA_REPORT="$out/quota.md" \
        cargo test --locked -p integration-tests --test quickbooks crowding -- --nocapture \
        | grep -v '^{' >&2 ;;
    load)
      LOAD_SCHEDULES=2000 LOAD_TENANTS=20 LOAD_REPORT="$out/load.md" \
        cargo test --locked -p integration-tests --test local_stack same_minute -- --nocapture \
        | grep -v '^{' >&2 ;;
    *) echo "unknown benchmark: $1" >&2; exit 2 ;;
  esac
}

case "$what" in
  all)
    build_functions
    for b in intake functions sync storm faults quota load fuzz; do run "$b"; done ;;
  intake|functions)
    build_functions
    run "$what" ;;
  *) run "$what" ;;
esac
# Written whole or not at all. Tables a run did not remake are those of an earlier run on
# this machine (target/bench/): run everything (no argument) for one consistent set.
.venv/bin/python infra/bench/report.py "$out" > "$out/BENCHMARKS.md.new"
mv "$out/BENCHMARKS.md.new" BENCHMARKS.md
echo "bench: BENCHMARKS.md rebuilt from $out" >&2
