#!/usr/bin/env bash
# `sam local invoke` and `sam local start-api` with no image registry.
#
#   infra/sam-local.sh           image, then sam build, then the local stack for SAM (runs until
#                                Ctrl-C); invoke functions from another terminal (README, "Run a
#                                function the way Lambda does")
#   infra/sam-local.sh image     only the stand-in Lambda base image
#   infra/sam-local.sh build     the image and `sam build --config-env local`
#   infra/sam-local.sh stack     only the local stack (moto, simulators, API) on Docker's bridge
#                                address, with the events/ samples' connections, writing SAM's
#                                --env-vars file to .aws-sam/env-vars.json (and the same as
#                                KEY=VALUE lines to .aws-sam/env-vars.env)
#   infra/sam-local.sh address   print the host address containers reach the stack at
#   infra/sam-local.sh check     exit 0 if this machine can run the SAM path (a Docker engine on
#                                Linux whose bridge address is this host's), else say why
#
# SAM runs each function in the image public.ecr.aws/lambda/provided:al2023-rapid-<arch>,
# which it normally builds from the provided.al2023 image it pulls. With that tag already
# present and --skip-pull-image (set in samconfig.toml's `local` environment) it neither pulls
# nor builds, so this script makes one from local files: the host's C library (the functions'
# only dynamic dependencies), CA certificates, and the Lambda runtime interface emulator that
# ships inside the SAM CLI package. It replaces that tag for every project on this machine
# (a real AWS image under it is left alone: only a previous stand-in is removed). The
# functions are built for this machine's architecture.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# ldconfig and ip live in sbin, which a user's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "sam-local: no Lambda architecture for $(uname -m)" >&2; exit 1 ;;
esac
image="public.ecr.aws/lambda/provided:al2023-rapid-$arch"

# The address of the host on Docker's default bridge: the function containers reach the local
# stack there (SAM starts them on the bridge; it does not honour --docker-network host).
bridge_address() {
  local address
  address="$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)"
  if [ -z "$address" ]; then
    address="$(ip -4 -o addr show docker0 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')"
  fi
  [ -n "$address" ] || { echo "sam-local: cannot find Docker's bridge address (is the engine running?)" >&2; exit 1; }
  echo "$address"
}

# Whether this machine can run the SAM path; prints why not.
check() {
  [ "$(uname -s)" = Linux ] || { echo "not Linux (the image is made of this host's C library)"; return 1; }
  command -v docker >/dev/null || { echo "docker is not installed"; return 1; }
  docker info >/dev/null 2>&1 || { echo "no Docker engine answers ('docker info' failed)"; return 1; }
  local address
  address="$(bridge_address 2>/dev/null)" || { echo "Docker has no default bridge network"; return 1; }
  ip -4 -o addr show 2>/dev/null | grep -q "inet $address/" \
    || { echo "Docker's bridge address $address is not this host's (rootless Docker or a VM)"; return 1; }
}

# The files the image is made of, as "source:destination in the image" lines.
image_files() {
  local rie
  rie="$(.venv/bin/python -c 'import pathlib, samcli; print(pathlib.Path(samcli.__file__).parent / "local" / "rapid")')/aws-lambda-rie-$arch"
  [ -x "$rie" ] || [ -f "$rie" ] || { echo "sam-local: the SAM CLI package has no $rie" >&2; exit 1; }
  echo "$rie:/var/rapid/aws-lambda-rie"
  # The dynamic loader and the C library the bootstrap binaries link (ldd on any of them
  # lists these; libpthread and libdl are stubs in current glibc, kept for older linkers).
  local lib path
  for lib in libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1; do
    path="$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|AArch64|aarch64/ {print $NF; exit}')"
    [ -n "$path" ] || { echo "sam-local: $lib not found on this machine" >&2; exit 1; }
    echo "$(readlink -f "$path"):$path"
  done
  local loader
  case "$arch" in
    x86_64) loader=/lib64/ld-linux-x86-64.so.2 ;;
    arm64) loader=/lib/ld-linux-aarch64.so.1 ;;
  esac
  echo "$(readlink -f "$loader"):$loader"
  local ca
  for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [ -f "$ca" ]; then
      echo "$(readlink -f "$ca"):/etc/pki/tls/certs/ca-bundle.crt"
      echo "$(readlink -f "$ca"):/etc/ssl/certs/ca-certificates.crt"
      break
    fi
  done
}

# The digest label of a stand-in image (empty for any other image, or none).
stand_in_digest() {
  docker image inspect --format '{{index .Config.Labels "sync-service.stand-in"}}' "$1" 2>/dev/null || true
}

build_image() {
  command -v docker >/dev/null || { echo "sam-local: docker is not installed" >&2; exit 1; }
  docker info >/dev/null 2>&1 || { echo "sam-local: no Docker engine answers (docker info failed)" >&2; exit 1; }
  bash infra/setup.sh
  local files digest
  files="$(image_files)"
  # Rebuilt only when one of its files or this recipe changes.
  digest="$( {
    while IFS=: read -r src dest; do echo "$dest $(sha256sum <"$src")"; done <<<"$files"
    declare -f build_image
  } | sha256sum | cut -c1-16)"
  if [ "$(stand_in_digest "$image")" = "$digest" ]; then
    echo "sam-local: $image is up to date" >&2
    return
  fi
  local previous
  previous="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  local rootfs
  rootfs="$(mktemp -d)"
  # In a subshell, so the root filesystem goes whatever happens.
  (
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs"/{tmp,var/task,var/runtime,var/rapid,opt,etc}
    chmod 1777 "$rootfs/tmp"
    while IFS=: read -r src dest; do
      mkdir -p "$rootfs$(dirname "$dest")"
      cp -L "$src" "$rootfs$dest"
    done <<<"$files"
    chmod 0755 "$rootfs/var/rapid/aws-lambda-rie"
    # Lambda's own image runs functions as an unprivileged user; SAM runs them as root.
    printf 'root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n' >"$rootfs/etc/passwd"
    printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
    tar -C "$rootfs" -c . | docker import \
      --change 'ENTRYPOINT ["/var/rapid/aws-lambda-rie"]' \
      --change 'WORKDIR /var/task' \
      --change 'ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime TZ=:/etc/localtime PATH=/var/task:/usr/local/bin:/usr/bin:/bin:/opt/bin' \
      --change "LABEL sync-service.stand-in=$digest" \
      - "$image" >/dev/null
  )
  # The stand-in this one replaces, no longer tagged (never an image of AWS's).
  if [ -n "$previous" ] && [ -n "$(stand_in_digest "$previous")" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
  echo "sam-local: built $image from local files" >&2
}

sam_build() {
  build_image
  # SAM runs `cargo lambda` from the PATH.
  PATH="$root/.venv/bin:$PATH" .venv/bin/sam build --config-env local \
    --parameter-overrides "Architecture=$arch"
}

stack() {
  bash infra/setup.sh
  local address=127.0.0.1
  if docker info >/dev/null 2>&1; then
    address="$(bridge_address)"
  else
    echo "sam-local: no Docker engine answers; the stack listens on loopback (enough for cargo lambda watch)" >&2
  fi
  mkdir -p .aws-sam
  exec cargo run --quiet --locked --bin syncctl -- local \
    --host "$address" --listen "$address:3000" --sam-env-file .aws-sam/env-vars.json "$@"
}

export SAM_CLI_TELEMETRY=0
case "${1:-all}" in
  image) build_image ;;
  build) sam_build ;;
  address) bridge_address ;;
  check) check ;;
  stack) shift; stack "$@" ;;
  all) shift || true; sam_build; stack "$@" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
