#!/usr/bin/env bash
# Mounts a demo kvcfs cache and shows a slab going in and coming out.
#
#   examples/demo.sh          set up, build, mount, show, unmount
#   examples/demo.sh --keep   leave the cache mounted to play with
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
keep=${1:-}
cd "$top"
tests/install-deps.sh
build=${KVCFS_BUILD_DIR:-$top/build}
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

"$kvcfs" "$demo/root" "$demo/mnt" -o max_size=1G
cleanup() { [ "$keep" = --keep ] || fusermount3 -u "$demo/mnt"; }
trap cleanup EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; eval "$@"; }

# A model server would write its llama_state_seq blob; 1 MiB of noise here.
head -c 1048576 /dev/urandom > "$demo/work/state.bin"
fp=$(printf 'model.gguf' | sha256sum | cut -d' ' -f1)
ctx=$(printf 'n_ctx=4096' | sha256sum | cut -d' ' -f1)
keyopts="--fingerprint $fp --quant q4_k_m --ctx $ctx --tokens 1,15043,3186,29991"

run "$kvc key $keyopts"
key=$($kvc key $keyopts)
run "$kvc build $keyopts --payload $demo/work/state.bin --prompt 'Hello world' -o $demo/work >/dev/null"
run "cp $demo/work/$key.kvc $demo/mnt/incoming.part"
run "mv $demo/mnt/incoming.part $demo/mnt/$key.kvc"
run "ls -l $demo/mnt"
run "stat -c '%n: %s bytes, created %y' $demo/mnt/$key.kvc"
run "getfattr -d $demo/mnt/$key.kvc"
run "cat $demo/mnt/payload/$key | cmp - $demo/work/state.bin && echo restored payload is identical"
run "printf 'garbage' > $demo/mnt/bad.part && mv $demo/mnt/bad.part $demo/mnt/$key.kvc || true"
run "getfattr -n user.kvcfs.error $demo/mnt/bad.part; rm $demo/mnt/bad.part"
run "$kvc stats $demo/mnt"
if [ "$keep" = --keep ]; then
  echo; echo "The cache stays mounted at $demo/mnt; unmount with: fusermount3 -u $demo/mnt"
fi
