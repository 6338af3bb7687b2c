"""Byte-level BPE vocabularies: merges reconstructed from token order against the true merges
(a Hugging Face tokenizer.json given with --metadata-dir), measured on llama.cpp's own tokenization."""

from __future__ import annotations

import difflib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ggufkit.converters.bpe import reconstruct_merges, to_unicode
from ggufkit.samples import bpe_vocab
from ggufkit.samples.families import write_family_sample
from tests.conftest import json_of

MIXED = ("Hello world! The model reads the file.\n"
         "def main(args):\n    return printf(\"%d\\n\", 42)  # code\n"
         "Привет, мир! Модель читает файл.\n你好，世界。模型读取文件。こんにちは\n🙂 🚀 👍 emoji 🙂🙂\n")
TOKENIZE = ("import sys, json, llama_cpp\n"
            "text = open(sys.argv[2], encoding='utf-8').read().encode()\n"
            "out = []\n"
            "for p in sys.argv[1].split(','):\n"
            "    llm = llama_cpp.Llama(p, n_ctx=64, n_threads=1, verbose=False, vocab_only=True)\n"
            "    out.append(llm.tokenize(text, add_bos=False, special=False))\n"
            "print(json.dumps(out))\n")


def _tokenize(paths: list[Path], tmp_path: Path, content: str = MIXED) -> list[list[int]]:
    text = tmp_path / "mixed.txt"
    text.write_text(content, encoding="utf-8")
    r = subprocess.run([sys.executable, "-c", TOKENIZE, ",".join(map(str, paths)), str(text)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def _tokenizer_json(folder: Path, head: list[bytes], tail: list[bytes]) -> None:
    """The true vocabulary and merges of the sample's BPE, as a Hugging Face tokenizer.json holds them."""
    tokens, merges = bpe_vocab.build(512, head, tail)
    folder.mkdir()
    specials = set(head) | set(tail)
    vocab = {(t.decode() if t in specials else to_unicode(t)): i for i, t in enumerate(tokens)}
    (folder / "tokenizer.json").write_text(json.dumps({
        "model": {"type": "BPE", "vocab": vocab, "merges": [f"{to_unicode(a)} {to_unicode(b)}" for a, b in merges]},
        "added_tokens": [{"id": vocab[t.decode()], "content": t.decode(), "special": True} for t in specials]}))


def test_reconstructed_merges_equal_the_true_ones():
    tokens, merges = bpe_vocab.build(512, [], [b"<|endoftext|>"])
    assert reconstruct_merges(tokens, {511}) == merges


@pytest.mark.parametrize("name,head,tail,want", [
    ("gpt2", [], [b"<|endoftext|>"], 1.0),  # raw bytes stored: exact
    ("starcoder", [b"<|endoftext|>"], [], 1.0),
    ("mpt", [b"<|endoftext|>", b"<|padding|>"], [], 1.0),  # bytes stored as latin-1 code points: exact too
    ("falcon7", [b">>S%d<<" % i for i in range(11)] + [b"<|endoftext|>"], [], 1.0),  # GGCC: the file's merges
    ("gptneox", [b"<|endoftext|>", b"<|padding|>"], [], 0.25),  # lossy text: non-ASCII merges lost (measured 0.269)
])
def test_tokenization_agreement_on_mixed_text(cli, tmp_path, name, head, tail, want):
    src = tmp_path / f"{name}.bin"
    write_family_sample(src, name, "f16")
    rebuilt, exact = tmp_path / "rebuilt.gguf", tmp_path / "exact.gguf"
    d = json_of(cli("convert", src, "-o", rebuilt, "--json"))
    assert d["metadata"]["tokenizer"]["merges"].startswith("file" if name == "falcon7" else "reconstructed from token order")
    meta = tmp_path / "hf"
    _tokenizer_json(meta, head, tail)
    d = json_of(cli("convert", src, "-o", exact, "--json", "--metadata-dir", meta))
    assert d["metadata"]["tokenizer"]["merges"].startswith("tokenizer.json")
    assert d["metadata"]["tokenizer"]["tokens"] == "tokenizer.json"
    a, b = _tokenize([rebuilt, exact], tmp_path)
    # agreement: tokens in common after aligning the two sequences (difflib), over the longer one
    same = sum(m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()) / max(len(a), len(b))
    print(f"{name}: {len(b)} tokens with tokenizer.json, {len(a)} reconstructed, agreement {same:.3f}")
    assert same >= want
    if want == 1.0:
        assert a == b
    ascii_end = MIXED.index("Привет")  # English and code: the same tokens whatever the converter lost
    a2, b2 = _tokenize([rebuilt, exact], tmp_path, MIXED[:ascii_end])
    assert a2 == b2
