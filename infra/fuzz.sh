#!/usr/bin/env bash
# The long fuzzing run: every fuzzing property with FUZZ_CASES cases (default a million),
# release build, one property at a time, each timed. Prints a Markdown table (also written to
# target/fuzz-report.md) for BENCHMARKS.md. The test command runs the same properties with a
# few hundred cases each.
#
#   ./infra/fuzz.sh                 # a million cases each
#   FUZZ_CASES=20000 ./infra/fuzz.sh
#
# A failing property prints proptest's smallest failing input and the run stops.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export FUZZ_CASES="${FUZZ_CASES:-1000000}"

# crate (for the reader) and property
properties=(
  "sync-core time::tests::no_text_makes_the_parser_panic"
  "sync-core time::tests::no_cron_like_text_makes_the_parser_panic"
  "sync-core time::tests::expressions_and_near_misses_read_back_from_their_canonical_form_and_fire_in_order_in_every_zone"
  "sync-core time::tests::no_text_makes_the_zone_parser_panic"
  "sync-core platforms::tests::no_bytes_make_a_parser_panic"
  "sync-core platforms::tests::no_json_shaped_text_makes_a_parser_panic"
  "sync-core platforms::tests::no_change_to_a_woocommerce_order_makes_a_reader_or_the_webhook_parser_panic"
  "sync-core platforms::tests::no_change_to_a_quickbooks_entity_makes_a_reader_panic"
  "sync-core platforms::tests::no_change_to_a_quickbooks_or_supabase_delivery_makes_its_parser_panic"
  "sync-core platforms::tests::no_change_to_a_supabase_row_makes_its_reader_panic"
  "webhook-intake tests::fuzz::no_delivery_makes_the_intake_panic_or_answer_5xx_and_only_signed_ones_queue"
  "schedule-api tests::fuzz::no_request_to_any_route_makes_the_api_panic_or_answer_5xx"
  "connection-setup tests::fuzz::no_request_to_a_connection_setup_route_makes_it_panic_or_answer_5xx"
)

echo "fuzz: building (release)..." >&2
# The four crates are always built together: sync-core's `fuzzing` feature (which the other
# three turn on for their tests) then stays on, and nothing is built twice.
crates=(-p sync-core -p webhook-intake -p schedule-api -p connection-setup)
cargo test --release --locked -q "${crates[@]}" --lib --no-run >&2

report="$root/target/fuzz-report.md"
{
  echo "| property | cases | seconds | result |"
  echo "|---|---|---|---|"
} >"$report"
for entry in "${properties[@]}"; do
  name="${entry#* }"
  echo "fuzz: $name ($FUZZ_CASES cases)..." >&2
  start=$(date +%s.%N)
  if out="$(cargo test --release --locked -q "${crates[@]}" --lib -- --exact "$name" --nocapture 2>&1)"; then
    # A property that was renamed matches no test: that is no pass.
    if grep -q "test result: ok. 1 passed" <<<"$out"; then result="passed"; else result="NOT FOUND"; fi
  else
    result="FAILED"
  fi
  seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
  grep -E "fuzz: \[" <<<"$out" >&2 || true
  echo "| \`$name\` | $FUZZ_CASES | $seconds | $result |" >>"$report"
  if [[ "$result" != passed ]]; then
    # The failure and proptest's smallest failing input (the functions' metric lines left out).
    { grep -v '^{"Function"' <<<"$out" | grep -A60 -m1 'panicked at' || grep -v '^{"Function"' <<<"$out" | tail -40; } >&2 || true
    cat "$report"
    exit 1
  fi
done
cat "$report"
