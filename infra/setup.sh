#!/usr/bin/env bash
# Installs what the local stack and the tests need beyond the Rust toolchain: PostgreSQL's
# server (Debian's package) where it is missing, and a project virtualenv (./.venv) with moto,
# cfn-lint and the SAM CLI. Idempotent: it reinstalls only
# when infra/requirements.txt changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$root/infra/requirements.txt" | cut -d' ' -f1)"

# PostgreSQL's server binaries (Debian's package): the local stack's Supabase project and the
# sync tests run a throwaway server of their own. The package's own cluster is not used.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "setup: installing PostgreSQL (Debian's postgresql package)..." >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
fi

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing Python tools into .venv (moto, cfn-lint, SAM CLI)..." >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/infra/requirements.txt" >&2
echo "$want" > "$stamp"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "setup: done" >&2
