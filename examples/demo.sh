#!/usr/bin/env bash
# Mounts a demo kvcfs cache and shows a slab going in and coming out.
#
#   examples/demo.sh          set up, build, mount, show, unmount
#   examples/demo.sh --keep   leave the cache mounted to play with
set -euo pipefail
usage() { echo "usage: examples/demo.sh [--keep]" >&2; }
keep=no
case $# in
  0) ;;
  1) case $1 in
       --keep) keep=yes ;;
       -h|--help) usage; exit 0 ;;
       *) usage; exit 2 ;;
     esac ;;
  *) usage; exit 2 ;;
esac
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# Bold only on a terminal: piped or logged output stays plain text.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
run() { say "$*"; eval "$@"; }
note() { printf '# %s\n' "$*"; }

note "installing what kvcfs needs to build and run (tests/install-deps.sh --runtime)"
tests/install-deps.sh --runtime
build=${KVCFS_BUILD_DIR:-$top/build}
note "building kvcfs in $build (about a minute the first time)"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" >/dev/null
kvc=$build/cli/kvc
kvcfs=$build/fs/kvcfs

demo=${KVCFS_DEMO_DIR:-/tmp/kvcfs-demo}
if mountpoint -q "$demo/mnt" 2>/dev/null; then fusermount3 -u "$demo/mnt"; fi
# A fresh cache each time: an earlier run's slab of the same key would be
# kept (first writer wins) and the restore would return its payload.
rm -rf "$demo/root" "$demo/work"
mkdir -p "$demo/root" "$demo/mnt" "$demo/work"

run "$kvcfs $demo/root $demo/mnt -o max_size=1G"
cleanup() { [ "$keep" = yes ] || fusermount3 -u "$demo/mnt"; }
trap cleanup EXIT

# A model server would write its llama_state_seq blob; 1 MiB of noise here.
head -c 1048576 /dev/urandom > "$demo/work/state.bin"
fp=$(printf 'model.gguf' | sha256sum | cut -d' ' -f1)
ctx=$(printf 'n_ctx=4096' | sha256sum | cut -d' ' -f1)
keyopts="--fingerprint $fp --quant q4_k_m --ctx $ctx --tokens 1,15043,3186,29991"

run "$kvc key $keyopts"
key=$($kvc key $keyopts)
run "$kvc build $keyopts --payload $demo/work/state.bin --prompt 'Hello world' -o $demo/work/ >/dev/null"
run "cp $demo/work/$key.kvc $demo/mnt/incoming.part"
run "mv $demo/mnt/incoming.part $demo/mnt/$key.kvc"
run "ls -l $demo/mnt"
run "stat -c '%n: %s bytes, created %y' $demo/mnt/$key.kvc"
run "getfattr -d $demo/mnt/$key.kvc"
run "cat $demo/mnt/payload/$key | cmp - $demo/work/state.bin && echo restored payload is identical"
note "next, garbage published under the key: kvcfs refuses it (EBADMSG), as it should,"
note "and says why in user.kvcfs.error and in .kvcfs/refusals"
run "printf 'garbage' > $demo/mnt/bad.part && mv $demo/mnt/bad.part $demo/mnt/$key.kvc || echo '(refused, as expected)'"
run "getfattr -n user.kvcfs.error $demo/mnt/bad.part; rm $demo/mnt/bad.part"
run "cat $demo/mnt/.kvcfs/refusals"
run "$kvc stats $demo/mnt"
if [ "$keep" = yes ]; then
  echo; echo "The cache stays mounted at $demo/mnt; unmount with: fusermount3 -u $demo/mnt"
fi
