#!/usr/bin/env python3
"""Golden fixtures for the C++ CLIP tokenizer, produced by the reference tokenizer.

  python3 scripts/golden/make_golden_tokenizer.py [--ref /tmp/ref] [--vocab assets/bpe_simple_vocab_16e6.txt.gz]
                                          [--out tests/fixtures/tokenizer]

Imports the reference's models/simple_tokenizer.py at generation time (nothing of it is committed)
with a stand-in `ftfy` module whose fix_text does what the C++ port does instead of ftfy: Latin
ligatures split, curly quotes straightened, NFC. Writes
  golden.json: {"cases": [{"text", "ids", "clean", "tokens77" | "too_long": n}], "decode": [...]}
where ids are the BPE ids (encode), clean is the reference's cleaned text, tokens77 the row of
the reference `tokenize` (context 77, truncate=False) or, for too-long texts, the token count and
the truncate=True row.
"""
import argparse
import importlib.util
import json
import os
import random
import sys
import types
import unicodedata

LIGATURES = "\u0132\u0133\u0149\u01c4\u01c5\u01c6\u01c7\u01c8\u01c9\u01ca\u01cb\u01cc\u01f1\u01f2\u01f3" \
            "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06"


def fix_text(text):
    text = "".join(unicodedata.normalize("NFKC", c) if c in LIGATURES else c for c in text)
    for c in "\u02bc\u2018\u2019\u201a\u201b":
        text = text.replace(c, "'")
    for c in "\u201c\u201d\u201e\u201f":
        text = text.replace(c, '"')
    return unicodedata.normalize("NFC", text)


def load_reference(ref_dir):
    sys.modules["ftfy"] = types.SimpleNamespace(fix_text=fix_text)
    path = os.path.join(ref_dir, "models", "simple_tokenizer.py")
    spec = importlib.util.spec_from_file_location("ref_simple_tokenizer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference_tokenize(tok, text, context_length=77, truncate=False):
    """The reference `tokenize` of one text (models/model_CLIP.py), without importing torch code."""
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    tokens = [sot] + tok.encode(text) + [eot]
    if len(tokens) > context_length:
        if not truncate:
            return None, len(tokens)
        tokens = tokens[:context_length]
        tokens[-1] = eot
    return tokens + [0] * (context_length - len(tokens)), len(tokens)


def texts(rng):
    t = [
        "a", "photo", "of", "a photo of a damaged <|class|>", "a photo of a good <|class|>",
        "a photo of a flawless <|class|>", "A Photo Of A Damaged <|CLASS|>", "<|class|>", "<|startoftext|>hi<|endoftext|>",
        "x<|class|>y", "!<|class|>", "<<|class|>>", "<|claſſ|>", "a broken bottle.", "screw", "metal_nut",
        "pcb1", "pcb4", "macaroni2", "transistor", "capsule", "hazelnut", "toothbrush", "carpet", "grid",
        "leather", "tile", "wood", "zipper", "pill", "cable", "candle", "cashew", "chewinggum", "fryum",
        "pipe_fryum", "", "   ", "\t\n", "  leading and trailing  ", "multiple   spaces\tand\nnewlines",
        "it's", "don't", "we're", "they've", "I'm", "we'll", "he'd", "IT'S", "DON'T", "it’s", "don’t",
        "“quoted”", "‘single’", "„low‟", "rock'n'roll", "'s", "'ſ", "can't've", "o'clock", "'''", "''s",
        "hello, world!", "hello,world", "e.g. test", "...", "?!?", "#hashtag", "@user", "a+b=c", "50%",
        "3.14159", "1234567890", "version 2.0.1", "1st 2nd 3rd", "12abc34", "abc123def", "١٢٣", "²³", "½ ⅓",
        "Ⅻ roman", "①②③", "𝟏𝟐", "&amp;", "&lt;tag&gt;", "&quot;quoted&quot;", "&#39;apos&#39;", "&#65;&#x42;&#X43;",
        "&nbsp;x&nbsp;", "&copy; 2024", "&eacute;t&eacute;", "&amp;amp;", "&amp;lt;", "&amp;amp;amp;",
        "&notit;", "&notin;", "&ampx", "&amp", "AT&T", "&#128;", "&#0;", "&#x110000;", "&#xD800;", "&#1;x",
        "&#;", "&#x;", "&#xZZ;", "&unknownentity;", "&Aacute", "&aacutex", "&#9999999999999999999999;",
        "&#128512;", "&#x1F600;", "&lt&gt", "& amp;", "&#65", "&#x41", "&#0065;", "&hellip;&mdash;&ndash;",
        "café", "cafe\u0301", "naïve", "nai\u0308ve", "Ångström", "A\u030angstro\u0308m", "résumé",
        "Ελληνικά", "ΟΔΥΣΣΕΥΣ", "ΣΑΣ", "Σ", "ΑΣ", "Σ.", "ΑΣ.", "Α'Σ", "ΑΣ'", "ΑΣ'Α", "ΑΣΑ", "a\u0345Σ",
        "Русский текст", "ПРИВЕТ МИР", "Ђ Љ Њ Ћ", "İstanbul", "ISTANBUL", "ß straße STRASSE", "ẞ", "Ǆ ǅ ǆ",
        "ﬁne ﬂow ﬀ ﬃ ﬄ ﬅ ﬆ", "Ĳssel ĳs", "ŉ", "中文测试", "日本語のテキスト", "한국어 텍스트", "\u1100\u1161\u11a8",
        "混合 mixed 文字", "emoji 😀😃😄", "👍🏽", "👨‍👩‍👧", "🇺🇸", "❤️", "✓ ✗", "→ ← ↑", "€ £ ¥ $", "© ® ™",
        "\u00a0nbsp\u00a0", "\u2003em\u2003space", "\u3000ideographic", "zero\u200bwidth", "soft\u00adhyphen",
        "\u001cfs\u001d", "a\u001fb", "\u0085nel", "tab\tsep", "\ufeffbom", "control\x07char", "\u2028line\u2029",
        "a\u0345b", "\u0345", "Ꭰꭰ", "ǅ", "ᾈ", "ﬀ", "Ⓐⓐ", "Kelvin \u212a", "Ω \u2126", "Å \u212b",
        "\u0958\u0959", "\u1e9b\u0323", "q\u0307\u0323", "\u0041\u0300\u0316", "\u05d0\u05b7", "\u0b47\u0b3e",
        "x\u0300\u0301\u0302\u0303\u0304", "\u0300start", "\u0344", "\u0f73", "\u2126\u0301",
        "some_snake_case_name", "CamelCaseWord", "UPPER lower MiXeD", "hyphen-ated word", "slash/separated",
        "back\\slash", "under_score", "a.b.c", "x" * 100, "supercalifragilisticexpialidocious",
        "pneumonoultramicroscopicsilicovolcanoconiosis", "aaaaaaaaaaaaaaaaaaaa", "ababababab",
        "</w>", "a</w>b", "<|endoftext|>", "<|startoftext|>",
        "A photo of a damaged carpet with a cut", "a close-up photo of a scratched screw",
        "a cropped photo of the damaged <|class|>.", "there is a crack on the <|class|>",
    ]
    long1 = " ".join(["a photo of a damaged object"] * 20)
    long2 = "word " * 75
    long3 = "word " * 74
    long4 = "x" * 2000
    t += [long1, long2, long3, long4, "a " * 75, "a " * 76, "<|class|> " * 80]
    # Random strings drawn from a varied alphabet.
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-_()[]{}<>|/&#") + \
        list("éèêëàâäôöûüçñßøåæœÉÀÖÜΣσςαβγδЖжЯя中文日本語한국😀😃👍\u0301\u0308\u00a0\u2019\u201c\u201d\t\n") + \
        ["&amp;", "&lt;", "&#39;", "<|class|>", "'s", "'ll", " "]
    for _ in range(160):
        n = rng.randint(1, 30)
        t.append("".join(rng.choice(alphabet) for _ in range(n)))
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--vocab", default=os.path.join(os.path.dirname(__file__), "..", "..", "assets",
                                                    "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "tokenizer"))
    args = ap.parse_args()
    mod = load_reference(args.ref)
    tok = mod.SimpleTokenizer(args.vocab)
    rng = random.Random(1234)

    cases = []
    for text in texts(rng):
        case = {"text": text, "ids": tok.encode(text),
                "clean": mod.whitespace_clean(mod.basic_clean(text)).lower()}
        row, n = reference_tokenize(tok, text)
        if row is None:
            case["too_long"] = n
            case["truncated77"] = reference_tokenize(tok, text, truncate=True)[0]
        else:
            case["tokens77"] = row
        cases.append(case)

    # decode: ids of some cases plus random id sequences (which may split UTF-8 sequences).
    decode = []
    for case in cases[:60]:
        decode.append({"ids": case["ids"], "text": tok.decode(case["ids"])})
    for _ in range(60):
        ids = [rng.randrange(0, 49409) for _ in range(rng.randint(1, 12))]
        decode.append({"ids": ids, "text": tok.decode(ids)})
    bytes_ids = [i for i in range(512)]
    decode.append({"ids": bytes_ids, "text": tok.decode(bytes_ids)})

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/golden/make_golden_tokenizer.py", "cases": cases, "decode": decode}, f,
                  ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print("wrote %s: %d cases (%d too long), %d decode cases" %
          (path, len(cases), sum("too_long" in c for c in cases), len(decode)))


if __name__ == "__main__":
    main()
