#!/usr/bin/env bash
# The test command: format check, lints, unit tests, integration tests against moto, and
# template lint. Installs what it needs first (infra/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
start=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }

# pytest's count of passed or failed tests in a log (0 when it names none).
pytest_count() { grep -oE "[0-9]+ $1" "$2" | tail -1 | grep -oE '[0-9]+' || echo 0; }

step "setup"
bash infra/setup.sh
export SAM_CLI_TELEMETRY=0

step "cargo fmt --check"
cargo fmt --all -- --check
# The platform modules are declared by the registry macro, which cargo fmt does not look
# inside: check them by path.
find shared/core/src/platforms -name '*.rs' -print0 | xargs -0 rustfmt --edition 2021 --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit and integration tests (integration tests start moto on a free loopback port)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"

step "simulators against the platforms' own Python clients (woocommerce, postgrest, intuit-oauth, python-quickbooks)"
pylog="$(mktemp)"
trap 'rm -f "$log" "$pylog"' EXIT
SYNCCTL="$root/target/debug/syncctl" .venv/bin/python -m pytest -q -p no:cacheprovider infra/sims/tests 2>&1 | tee "$pylog"
py_passed="$(pytest_count passed "$pylog")"
py_failed="$(pytest_count failed "$pylog")"

step "OpenAPI: the served document, and schemathesis against the local stack (no 5xx, every answer as documented)"
apilog="$(mktemp)"
trap 'rm -f "$log" "$pylog" "$apilog"' EXIT
SYNCCTL="$root/target/debug/syncctl" .venv/bin/python -m pytest -q -s -p no:cacheprovider infra/tests/test_openapi.py 2>&1 | tee "$apilog"
api_passed="$(pytest_count passed "$apilog")"
api_failed="$(pytest_count failed "$apilog")"

step "sam local: each function's bootstrap in Lambda's container, invoked with its events/ samples"
# Needs a Docker engine on Linux (no registry: infra/sam-local.sh builds the Lambda image
# from local files). Skipped, saying why, where there is none.
sam_passed=0 sam_failed=0 sam_note="ran"
if sam_why="$(bash infra/sam-local.sh check)"; then
  bash infra/sam-local.sh build
  samlog="$(mktemp)"
  trap 'rm -f "$log" "$pylog" "$apilog" "$samlog"' EXIT
  SAM_TIMES_FILE="$root/target/sam-invoke-times.md" SYNCCTL="$root/target/debug/syncctl" \
    .venv/bin/python -m pytest -q -p no:cacheprovider infra/tests/test_sam_local.py 2>&1 | tee "$samlog"
  sam_passed="$(pytest_count passed "$samlog")"
  sam_failed="$(pytest_count failed "$samlog")"
  echo "invoke times through sam local start-lambda (first = a new container):"
  cat "$root/target/sam-invoke-times.md"
else
  sam_note="SKIPPED: $sam_why"
  echo "sam local: $sam_note"
fi

step "linkage: HTTP clients only where platforms or alert destinations are called, simulators in no function"
for f in schedule-api webhook-intake webhook-coalescer sync-worker connection-setup sweeper; do
  tree="$(cargo tree -e normal -p "$f" --locked)"
  if grep -q ' platform-sims ' <<<"$tree"; then
    echo "the $f function links the platform simulators" >&2; exit 1
  fi
  case "$f" in
    # (The sweeper sends alert notices to Slack and webhook destinations, through a client
    # that refuses private addresses and redirects; it calls no platform.)
    sync-worker|connection-setup|sweeper) ;;
    *) if grep -q ' reqwest ' <<<"$tree"; then
         echo "the $f function links a platform HTTP client (reqwest)" >&2; exit 1
       fi ;;
  esac
done
echo "linkage: ok"

step "IAM: each function's policy grants exactly what its code can call (infra/iam_check.py)"
.venv/bin/python infra/iam_check.py --self-test
.venv/bin/python infra/iam_check.py

step "template: routes, batch sizes and timeouts as the code says (infra/template_check.py)"
SYNCCTL="$root/target/debug/syncctl" .venv/bin/python infra/template_check.py --self-test
SYNCCTL="$root/target/debug/syncctl" .venv/bin/python infra/template_check.py

step "template lint: cfn-lint"
.venv/bin/cfn-lint template.yaml

step "template lint: sam validate --lint"
.venv/bin/sam validate --lint --region us-east-1 --template-file template.yaml

totals="$(awk -v pp="$((py_passed + api_passed + sam_passed))" -v pf="$((py_failed + api_failed + sam_failed))" '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed", p + pp, f + pf }' "$log")"
printf '\nall checks passed in %ss\n' "$(( $(date +%s) - start ))"
printf 'tests: %s\n' "$totals"
printf 'sam local step: %s\n' "$sam_note"
