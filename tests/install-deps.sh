#!/usr/bin/env bash
# Installs what kvcfs needs to build, test and run:
#
#  1. the Debian packages below (apt-get install), when any is missing;
#  2. libfuse >= 3.16, when the system's is older (Debian 12 ships 3.14):
#     Debian 13's source package fuse3 is fetched with apt-get source, built
#     with meson (library only) and installed into /usr/local, where
#     pkg-config and the dynamic linker look before /usr. Distributions
#     that ship libfuse >= 3.16 skip this step.
#
# Each step checks first and does nothing when its part is present, so it is
# cheap to call each time. It says what it does on stderr.
#
#   tests/install-deps.sh            what the whole test suite needs
#   tests/install-deps.sh --runtime  only what building and running kvcfs
#                                    needs (examples/demo.sh)
set -euo pipefail

# Building and running kvcfs, and building libfuse when the system's is old.
runtime_packages=(
  build-essential meson ninja-build pkg-config
  libfuse3-dev fuse3 libglib2.0-dev
  libisal-dev libssl-dev attr
  dpkg-dev xz-utils gpgv debian-archive-keyring
)
# The tests on top: cmocka, the fuzzers' clang, man, rsync, GlusterFS.
test_packages=(
  libcmocka-dev python3 rsync man-db clang
  glusterfs-server glusterfs-client
)
case ${1:-} in
  --runtime) packages=("${runtime_packages[@]}") ;;
  "") packages=("${runtime_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: tests/install-deps.sh [--runtime]" >&2; exit 2 ;;
esac
fuse_min=3.16          # the oldest libfuse kvcfs is tested against
fuse_suite=trixie      # Debian 13, whose fuse3 source package is 3.17.x
fuse_prefix=/usr/local

say() { echo "install-deps: $*" >&2; }

sudo=""
need_root() {
  if [ "$(id -u)" -ne 0 ] && [ -z "$sudo" ]; then
    command -v sudo >/dev/null || { say "need root (or sudo) to $1"; exit 1; }
    sudo=sudo
  fi
}

install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root "install: ${missing[*]}"
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The archive URI of the machine's own Debian entries (the one serving the
# release it runs), as apt itself reads it from sources.list, sources.list.d
# *.list and deb822 *.sources files. Prints nothing if there is none.
debian_archive_uri() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || return 0
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
    awk -v want="$codename" '$2 == want { print $1; exit }'
}

# Fetches, builds and installs libfuse from Debian 13's fuse3 source package.
# apt runs with a private state, cache and source list in a temporary
# directory, so the system's sources and package lists stay as they were.
# Signatures are checked against the Debian archive keyring.
build_libfuse() {
  local uri work keyring opts
  uri=$(debian_archive_uri)
  if [ -z "$uri" ]; then
    say "libfuse $(pkg-config --modversion fuse3 2>/dev/null || echo none) is older than $fuse_min" \
        "and no Debian archive is configured in apt to fetch fuse3 from; install libfuse >= $fuse_min by hand"
    exit 1
  fi
  need_root "install libfuse into $fuse_prefix"
  work=$(mktemp -d /tmp/kvc-libfuse.XXXXXX)
  # shellcheck disable=SC2064  # expand $work now
  trap "rm -rf '$work'" EXIT
  mkdir -p "$work/etc/sources.list.d" "$work/state/lists/partial" \
           "$work/cache/archives/partial" "$work/src"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  if [ -f "$keyring" ]; then
    echo "deb-src [signed-by=$keyring] $uri $fuse_suite main" > "$work/etc/sources.list"
  else
    echo "deb-src $uri $fuse_suite main" > "$work/etc/sources.list"
  fi
  opts=(-o "Dir::State=$work/state" -o "Dir::Cache=$work/cache"
        -o "Dir::Etc::SourceList=$work/etc/sources.list"
        -o "Dir::Etc::SourceParts=$work/etc/sources.list.d"
        -o "APT::Sandbox::User=root")
  say "libfuse $(pkg-config --modversion fuse3 2>/dev/null || echo none) is older than $fuse_min:" \
      "building Debian $fuse_suite's fuse3 source package ($uri) into $fuse_prefix"
  say "  apt-get update (private lists in $work, deb-src $fuse_suite)"
  apt-get "${opts[@]}" update -qq
  say "  apt-get source fuse3"
  (cd "$work/src" && apt-get "${opts[@]}" source -qq fuse3 >/dev/null)
  local srcdir
  srcdir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'fuse3-*' | head -n1)
  [ -n "$srcdir" ] || { say "apt-get source fuse3 unpacked nothing"; exit 1; }
  say "  meson setup (library only) and ninja install from $(basename "$srcdir")"
  meson setup "$work/build" "$srcdir" --prefix="$fuse_prefix" --buildtype=release \
    -Dutils=false -Dexamples=false -Dtests=false -Duseroot=false -Dinitscriptdir= >/dev/null
  ninja -C "$work/build" >/dev/null
  $sudo ninja -C "$work/build" install >/dev/null
  $sudo ldconfig
  if ! pkg-config --atleast-version="$fuse_min" fuse3; then
    say "built libfuse but pkg-config still finds $(pkg-config --modversion fuse3)"
    exit 1
  fi
  say "libfuse $(pkg-config --modversion fuse3) installed:" \
      "$(pkg-config --variable=libdir fuse3)/libfuse3.so, headers in $(pkg-config --variable=includedir fuse3)/fuse3"
}

install_packages
if pkg-config --atleast-version="$fuse_min" fuse3; then
  exit 0
fi
build_libfuse
