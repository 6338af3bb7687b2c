"""The vocabulary of a legacy file written into GGUF: SentencePiece ("llama") or byte-level BPE ("gpt2")."""

from __future__ import annotations

import gguf

from ggufkit.converters import bpe, spm_vocab
from ggufkit.converters.metadata import ConvertOptions
from ggufkit.formats.legacy import LegacyModel


def add_vocab(w: gguf.GGUFWriter, m: LegacyModel, options: ConvertOptions) -> dict[str, str]:
    """Write the tokenizer keys; returns where each piece came from (for the summary)."""
    if m.family.tokenizer == "bpe":
        return _add_bpe_vocab(w, m, options)
    _add_spm_vocab(w, m, options)
    return {"tokens": "file", "merges": "none (SentencePiece)"}


def _add_spm_vocab(w: gguf.GGUFWriter, m: LegacyModel, options: ConvertOptions) -> None:
    tokens, scores, types = spm_vocab.legacy_to_gguf(m.vocab, m.has_scores)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(spm_vocab.UNK_ID)
    w.add_bos_token_id(spm_vocab.BOS_ID)
    w.add_eos_token_id(spm_vocab.EOS_ID)
    if options.metadata_dir is not None:
        gguf.SpecialVocab(options.metadata_dir, load_merges=False, n_vocab=len(tokens)).add_to_gguf(w, quiet=True)


def _add_bpe_vocab(w: gguf.GGUFWriter, m: LegacyModel, options: ConvertOptions) -> dict[str, str]:
    """Byte-level BPE (llama.cpp's "gpt2" model); returns where each piece came from."""
    spec = m.family.bpe
    assert spec is not None
    v = bpe.from_file(m.vocab, m.merges, spec)
    folder = options.metadata_dir
    if folder is not None and (folder / "tokenizer.json").exists():
        v = bpe.from_tokenizer_json(folder, len(m.vocab), v)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(spec.pre)
    w.add_token_list(v.tokens)
    w.add_token_types(v.types)
    w.add_token_merges(v.merges)
    special = gguf.SpecialVocab(folder, load_merges=False, n_vocab=len(v.tokens)) if folder is not None else None
    found = special.special_token_ids if special is not None else {}
    if "bos" not in found:
        w.add_bos_token_id(v.bos)
    if "eos" not in found:
        w.add_eos_token_id(v.eos)
    if special is not None and "bos" not in special.add_special_token:
        w.add_add_bos_token(False)  # the examples' mains never added one
    elif special is None:
        w.add_add_bos_token(False)
    if special is not None:
        special.add_to_gguf(w, quiet=True)
        if found:
            v.sources["special_tokens"] = "tokenizer_config.json"
        if special.chat_template:
            v.sources["chat_template"] = "tokenizer_config.json"
    return v.sources
