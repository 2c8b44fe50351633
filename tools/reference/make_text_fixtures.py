#!/usr/bin/python3
"""Makes the text-prompt fixtures (tests/fixtures/text/): a small SentencePiece model trained with LLaMA's settings
and the ids sentencepiece itself gives for a few hundred strings, so the C# tokenizer can be checked without the
real 32000-piece LLaMA model (which cannot be downloaded here).

    apt-get install -y python3-sentencepiece
    /usr/bin/python3 tools/reference/make_text_fixtures.py

LLaMA's trainer settings kept: BPE, byte fallback, split digits, dummy prefix, identity normalisation, no
whitespace squeezing, unk/bos/eos = 0/1/2, no pad. The vocabulary is smaller (1000), trained on the UCF-101
class prompts and generated English, so most strings exercise merges and some need byte fallback.
"""
import json
import os
import random
import re
import sys

import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "text")
CLASSES = os.path.join(ROOT, "src", "Tokenizer", "Text", "ucf101-classes.txt")


def class_prompt(name):
    """UCF-101 class name -> prompt: split before each capital, lower-cased ("ApplyEyeMakeup" -> "apply eye makeup")."""
    return re.sub(r"([A-Z])", r" \1", name).strip().lower()


def corpus(classes, rng):
    words = sorted({w for c in classes for w in class_prompt(c).split()})
    extra = ("a the of and with in on at to is person people man woman child playing doing video clip "
             "outdoor indoor slow fast motion camera scene ball water field stage room").split()
    vocab = words + extra
    lines = [class_prompt(c) for c in classes] * 20
    for _ in range(4000):
        n = rng.randint(1, 12)
        lines.append(" ".join(rng.choice(vocab) for _ in range(n)))
    for _ in range(300):
        lines.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 6))) for _ in range(rng.randint(1, 4))))
    return lines


def fixture_strings(classes, rng):
    strings = [class_prompt(c) for c in classes]
    strings += [
        "", " ", "  ", "a", "A", "Hello World", "hello  world", " leading space", "trailing space ", "\ttab\tseparated",
        "new\nline", "2024", "12345 67890", "room 101 on floor 3", "x1y2z3", "café", "naïve façade", "Übergröße", "東京タワー",
        "中文 视频", "emoji 😀 test", "🎬🎥", "mixed 日本 and english 123", "punctuation: a, b; c! d? (e) [f] {g}",
        "quotes \"double\" and 'single'", "tabs\tand\nnewlines\r\nmixed", "ALL CAPS CLASS NAME", "cAmElCaSe",
        "playing guitar on a stage with people", "a" * 100, "ab " * 60, "ÿ", "\u00a0non-breaking", "zero\u200bwidth",
    ]
    for _ in range(150):
        n = rng.randint(1, 8)
        strings.append(" ".join(class_prompt(rng.choice(classes)).split()[0] for _ in range(n)))
    return strings


def main():
    with open(CLASSES) as f:
        classes = [line.strip() for line in f if line.strip()]
    assert len(classes) == 101, len(classes)
    rng = random.Random(7)
    os.makedirs(OUT, exist_ok=True)
    train = os.path.join(OUT, "train.txt")
    with open(train, "w") as f:
        f.write("\n".join(corpus(classes, rng)) + "\n")
    prefix = os.path.join(OUT, "tokenizer")
    spm.SentencePieceTrainer.train(
        input=train, model_prefix=prefix, model_type="bpe", vocab_size=1000, byte_fallback=True, split_digits=True,
        add_dummy_prefix=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        max_sentencepiece_length=16, split_by_unicode_script=True, num_threads=2, seed_sentencepiece_size=100000,
        minloglevel=2)
    os.remove(train)
    os.remove(prefix + ".vocab")
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    cases = [{"text": s, "ids": sp.encode(s)} for s in fixture_strings(classes, rng)]
    with open(os.path.join(OUT, "ids.json"), "w") as f:
        json.dump({"regenerate": "/usr/bin/python3 tools/reference/make_text_fixtures.py", "sentencepiece": spm.__version__,
                   "bos": sp.bos_id(), "eos": sp.eos_id(), "vocab": sp.get_piece_size(), "cases": cases}, f, ensure_ascii=False, indent=0)
    print(f"wrote {prefix}.model and {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
