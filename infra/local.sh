#!/usr/bin/env bash
# Runs the whole system locally against emulated AWS: moto, the table, queues and schedule
# group, the HTTP API on 127.0.0.1:3000 (--listen to change) and the schedule firer.
# Extra arguments go to `syncctl local` (see `cargo run --bin syncctl -- local --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash infra/setup.sh
exec cargo run --quiet --locked --bin syncctl -- local "$@"
