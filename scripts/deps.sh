#!/usr/bin/env bash
# Install the Debian 12 packages WSEmail needs to build, test and run the
# demo, if any is missing.  Needs root (or sudo) only when something is
# missing.  Usage: scripts/deps.sh [build|test|all]   (default: all)
set -euo pipefail

build_pkgs=(gcc make meson ninja-build pkg-config libxml2-dev
            libxmlsec1-dev libssl-dev openssl ca-certificates
            libsqlite3-dev libc-ares-dev libevent-dev libcurl4-openssl-dev
            liblua5.4-dev libmimalloc-dev
            dnsmasq-base python3 curl)
test_pkgs=(libcmocka-dev python3 dnsmasq-base sqlite3 curl python3-zeep)

case "${1:-all}" in
  build) want=("${build_pkgs[@]}") ;;
  test|all) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
else
  echo "deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
