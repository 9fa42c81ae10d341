#!/usr/bin/env python3
"""A model server's use of a kvcfs mount, standard library only.

    examples/python/example.py MOUNT

Keeps its cache in MOUNT/my-model (one directory per model). Saves the
state after a prompt, finds the longest cached prefix of a longer
prompt, restores it, shows that a corrupted save is refused, and saves a
slab without computing its CRC (kvcfs seals it).
"""
import errno
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvcache  # noqa: E402


def main():
    mount = sys.argv[1]
    # One directory per model: several caches share the mount and its budget.
    model = "my-model"
    os.makedirs(os.path.join(mount, model), exist_ok=True)
    here = os.path.join(mount, model)
    fingerprint = hashlib.sha256(b"my-model.gguf").digest()
    ctx = hashlib.sha256(b"n_ctx=8192,rope=default").digest()
    prompt = list(range(1000, 1600))          # token ids after tokenizing
    state = os.urandom(256 * 1024)            # llama_state_seq_get_data() output

    # Save the state after the first 512 tokens (a stride-aligned prefix).
    saved = prompt[:512]
    key = kvcache.cache_key(fingerprint, "q4_k_m", ctx, saved)
    slab = kvcache.build_slab(fingerprint, "q4_k_m", ctx, saved, state,
                              quant_bits=4, context_size=8192, prompt=b"system: ...")
    kvcache.save(mount, key, slab, directory=model)
    print("saved %d tokens as %s.kvc (%d bytes)" % (len(saved), key, len(slab)))

    # Later, a request arrives with the whole prompt: find what is cached.
    hit = kvcache.longest_prefix(mount, fingerprint, "q4_k_m", ctx, prompt, stride=256,
                                 directory=model)
    assert hit == (512, key), hit
    restored = kvcache.restore(mount, hit[1], directory=model)
    assert restored == state
    print("longest cached prefix: %d of %d tokens; restored %d bytes"
          % (hit[0], len(prompt), len(restored)))
    print("hit_count now %s" % os.getxattr(os.path.join(here, key + ".kvc"),
                                           "user.kvc.hit_count").decode())

    # A corrupted save is refused and nothing is published.
    other = prompt[:256]
    bad = bytearray(kvcache.build_slab(fingerprint, "q4_k_m", ctx, other, state))
    bad[-1] ^= 0xFF
    other_key = kvcache.cache_key(fingerprint, "q4_k_m", ctx, other)
    try:
        kvcache.save(mount, other_key, bytes(bad), directory=model)
        raise SystemExit("a corrupt slab was accepted")
    except OSError as e:
        assert e.errno == errno.EBADMSG, e
    assert kvcache.restore(mount, other_key, directory=model) is None
    print("corrupt save refused: %s" % os.strerror(errno.EBADMSG))

    # No CRC-32C at hand (pure Python computes it at a few MB/s): leave it
    # 0 and let kvcfs seal the slab at publish. The key is still checked.
    longer = prompt[:576]
    sealed_key = kvcache.cache_key(fingerprint, "q4_k_m", ctx, longer)
    big_state = os.urandom(8 << 20)
    kvcache.save_sealed(mount, sealed_key,
                        kvcache.slab_prefix(fingerprint, "q4_k_m", ctx, longer,
                                            len(big_state), 0, quant_bits=4),
                        big_state, directory=model)
    assert kvcache.restore(mount, sealed_key, directory=model) == big_state
    print("sealed save of %d bytes published; payload_crc32c %s" % (
        len(big_state), os.getxattr(os.path.join(here, sealed_key + ".kvc"),
                                    "user.kvc.payload_crc32c").decode()))

    os.unlink(os.path.join(here, key + ".kvc"))
    os.unlink(os.path.join(here, sealed_key + ".kvc"))
    os.rmdir(here)


if __name__ == "__main__":
    main()
