#!/usr/bin/env bash
# Installs the Debian packages kvcfs needs to build, test and run.
# Does nothing when they are all present, so it is cheap to call each time.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  libfuse3-dev fuse3 libglib2.0-dev libcmocka-dev
  libisal-dev libssl-dev
  python3 attr rsync man-db clang
  glusterfs-server glusterfs-client
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
