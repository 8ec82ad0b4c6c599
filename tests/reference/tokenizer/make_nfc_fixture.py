"""Writes tests/fixtures/tokenizer/normalization.json: NFC and NFD of seeded random strings rich in
combining marks, Hangul and compatibility characters, by Python's unicodedata (the reference for
NormalizerUnicode). Run with Python 3.13 (Unicode 15.1, as NormalizerData.cs):

    /root/.pyenv/versions/3.13.0/bin/python3 tests/reference/tokenizer/make_nfc_fixture.py
"""
import json
import os
import random
import unicodedata as ud

rng = random.Random(20261122)
pool = (
    [chr(c) for c in range(0x41, 0x7B)]
    + [chr(c) for c in range(0xC0, 0x180)]
    + [chr(c) for c in range(0x300, 0x370)]  # combining diacritics
    + [chr(c) for c in range(0x1E00, 0x1F00)]  # Latin extended additional
    + [chr(c) for c in range(0x1F00, 0x2000)]  # Greek extended
    + [chr(c) for c in range(0x1100, 0x1200)]  # Hangul jamo
    + [chr(c) for c in range(0xAC00, 0xAC60)]  # Hangul syllables
    + [chr(c) for c in range(0x3040, 0x3100)]  # kana incl. voiced marks
    + ["\u212B", "\u2126", "\u0344", "\u0F73", "\u0958", "\uFB2A", "\U0001D15E", "\U000110AB", "\u05B8\u05B7", " ", "\n"]
)
cases = []
for _ in range(400):
    s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
    cases.append({"text": s, "nfc": ud.normalize("NFC", s), "nfd": ud.normalize("NFD", s)})

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
out = os.path.join(root, "fixtures", "tokenizer", "normalization.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump({"reference": f"python unicodedata {ud.unidata_version}", "cases": cases}, f, ensure_ascii=True)
    f.write("\n")
print(out, len(cases), sum(c["nfc"] != c["text"] for c in cases))
