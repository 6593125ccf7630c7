#!/usr/bin/env bash
# One-time setup on a fresh Debian or Ubuntu machine: the C libraries (apt-get, only when
# missing) and the Python reference environment (tools/setup-venv.sh).
# Safe to run again: it does nothing when everything is present. --no-python: the tool's libraries alone;
# --no-venv: every Debian package, without creating the Python environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Swift itself is not a Debian package: say so plainly instead of failing later in `swift build`.
if ! command -v swift >/dev/null 2>&1; then
  echo "setup: no swift on PATH; install a Swift 6 toolchain first (https://www.swift.org/install/linux/)" >&2
  exit 1
fi
# Debian's package names; Ubuntu (the official Swift container images are Ubuntu) names the same
# libjpeg-turbo headers libjpeg-turbo8-dev. Anything else is treated as Debian.
distro=Debian
jpeg=libjpeg62-turbo-dev
if [ -r /etc/os-release ] && (. /etc/os-release && [ "${ID:-}" = ubuntu ] || [[ " ${ID_LIKE:-} " == *" ubuntu "* ]]); then
  distro=Ubuntu
  jpeg=libjpeg-turbo8-dev
fi
packages=(libhdf5-dev zlib1g-dev libopenblas-dev libdnnl-dev "$jpeg" libpng-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# The Python reference environment needs python3 with its venv module (Debian splits it out).
if [ "${1:-}" != "--no-python" ]; then
  if ! command -v python3 >/dev/null 2>&1; then
    missing+=(python3 python3-venv python3-pip)
  elif ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing $distro packages: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# --no-venv: the Debian packages only, Python's included (tools/test.sh creates the environment itself,
# beside the build).
if [ "${1:-}" != "--no-python" ] && [ "${1:-}" != "--no-venv" ]; then
  "$here/setup-venv.sh"
fi
