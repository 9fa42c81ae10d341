#!/usr/bin/env python3
"""Turn the golden vectors' manifest into a C table for the unit tests.

The manifest is JSON and the tests are C; generating the table at build
time keeps the expected values exactly those of the manifest, with no
hand-copied numbers in the tests.
"""
import json
import sys


def c_str(s):
    if s is None:
        return "NULL"
    return '"' + "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\' else "\\%03o" % ord(c)
        for c in s.encode("utf-8").decode("latin-1")) + '"'


def main():
    manifest, out = sys.argv[1], sys.argv[2]
    with open(manifest, encoding="utf-8") as f:
        entries = json.load(f)["entries"]
    rows = []
    for e in entries:
        if e["valid"]:
            rows.append(
                "{ .file = %s, .valid = true, .key = %s, .file_size = %du,"
                " .fingerprint = %s, .ctx_params_hash = %s, .quant_byte = %d,"
                " .fingerprint_mode = %s, .save_reason = %s, .quant_bits = %d,"
                " .context_size = %du, .creation_time = %duLL, .last_used_time = %duLL,"
                " .hit_count = %du, .cached_token_count = %du, .token_count = %du,"
                " .first_token = %dLL, .last_token = %dLL, .payload_length = %duLL,"
                " .payload_crc32c = %du, .payload_offset = %duLL,"
                " .prompt_length = %du, .hostname = %s, .writer_version = %s,"
                " .save_reason_detail = %s, .save_reason_detail_len = %d,"
                " .parse_meta_tag = \"ok\" },"
                % (c_str(e["file"]), c_str(e["key"]), e["file_size"],
                   c_str(e["fingerprint"]), c_str(e["ctx_params_hash"]), e["quant_byte"],
                   c_str(e["fingerprint_mode"]), c_str(e["save_reason"]), e["quant_bits"],
                   e["context_size"], e["creation_time"], e["last_used_time"],
                   e["hit_count"], e["cached_token_count"], e["token_count"],
                   -1 if e["first_token"] is None else e["first_token"],
                   -1 if e["last_token"] is None else e["last_token"],
                   e["payload_length"], e["payload_crc32c"], e["payload_offset"],
                   e["prompt_text_length"], c_str(e["hostname"]),
                   c_str(e["erllama_version"]), c_str(e["save_reason_detail"]),
                   len((e["save_reason_detail"] or "").encode("utf-8"))))
        else:
            detail = e.get("error_detail") or {}
            meta = e["parse_meta"]
            meta_tag = "ok" if meta == "ok" else e["error_tag"]
            rows.append(
                "{ .file = %s, .valid = false, .key = %s, .file_size = %du,"
                " .error_tag = %s, .parse_meta_tag = %s, .detail_stored = %duLL,"
                " .detail_actual = %duLL, .detail_missing = %s,"
                " .detail_expected_key = %s, .detail_actual_key = %s },"
                % (c_str(e["file"]), c_str(e["key"]), e["file_size"], c_str(e["error_tag"]),
                   c_str(meta_tag),
                   detail.get("stored_crc32c", detail.get("unsupported_version",
                              detail.get("unknown_save_reason",
                              detail.get("unknown_fingerprint_mode",
                              detail.get("unknown_quant_byte", 0))))),
                   detail.get("actual_crc32c", 0), c_str(detail.get("missing_tlv")),
                   c_str(detail.get("expected_key")), c_str(detail.get("actual_key"))))
    with open(out, "w", encoding="utf-8") as f:
        f.write("/* Generated from manifest.json by gen_table.py. Do not edit. */\n")
        f.write("static const struct vector vectors[] = {\n")
        f.write("\n".join(rows))
        f.write("\n};\n")


if __name__ == "__main__":
    main()
