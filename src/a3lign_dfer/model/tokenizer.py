"""The real CLIP BPE tokenizer, built offline.

The vocabulary ships inside the open-clip-torch wheel; we turn it into the
vocab.json/merges.txt pair HF's CLIPTokenizer reads, so the small embedded CLIP
and a hub CLIP are tokenized by the same class and loaded with from_pretrained.
"""
from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

from transformers import CLIPTokenizer

# open_clip keeps the first 49152 - 256 - 2 merges (simple_tokenizer.SimpleTokenizer).
_NUM_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def open_clip_bpe_path() -> Path:
    return Path(str(resources.files("open_clip") / "bpe_simple_vocab_16e6.txt.gz"))


def build_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    lines = gzip.open(open_clip_bpe_path()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:_NUM_MERGES + 1]]
    base = list(_bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={tok: i for i, tok in enumerate(vocab)},
        merges=merges,
        model_max_length=model_max_length,
    )
