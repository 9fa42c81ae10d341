#!/usr/bin/env bash
# Save, inspect, restore and delete a slab with nothing but shell tools.
#   examples/shell/save-and-restore.sh MOUNT SLAB_FILE
# SLAB_FILE is a KVC v1 file (for instance from "kvc build"); its key is
# the SHA-256 that kvcfs checks against the name it is published under.
set -euo pipefail
mnt=$1 slab=$2
key=$(basename "$slab" .kvc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Publish: copy under a staging name, then rename to the key name. The
# rename is where kvcfs validates; a bad file fails here with "Bad message".
cp "$slab" "$mnt/incoming.part"
mv "$mnt/incoming.part" "$mnt/$key.kvc"

# Inspect
ls -l "$mnt/$key.kvc"
stat -c '%n: %s bytes, created %y, last used %x' "$mnt/$key.kvc"
getfattr -d "$mnt/$key.kvc"
echo "token_count: $(getfattr --only-values -n user.kvc.token_count "$mnt/$key.kvc")"

# Restore: the payload bytes, validated before the open succeeded
cat "$mnt/payload/$key" > "$work/state.bin"
offset=$(getfattr --only-values -n user.kvc.payload_offset "$mnt/$key.kvc")
tail -c +$((offset + 1)) "$slab" | cmp - "$work/state.bin"
echo "restored $(stat -c %s "$work/state.bin") payload bytes, identical"

# Delete
rm "$mnt/$key.kvc"
test ! -e "$mnt/$key.kvc"
echo "deleted $key"
