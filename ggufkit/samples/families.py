"""Sample files of the GGML-era families besides LLaMA, byte for byte as their programs wrote them.

F32/F16 files as each ggml example's convert script wrote them (its own f16 rule, tensor order and
vocabulary encoding), quantized ones as its quantize tool did (ggml_common_quantize_0: the 2-D tensors
its regexes name, from the F16 file's values, header ftype = GGML_QNT_VERSION * 1000 + ftype). Those
blocks are today's: llama.cpp's own quantizer (ggml_quantize_chunk) makes Q4_1, Q5_1 and Q8_0 byte for
byte; Q4_0 and Q5_0 need the tools' fused multiply-add (old_quants.GGML_EXAMPLES). Falcon is written
as ggllm.cpp's falcon_quantize wrote GGCC; RWKV as rwkv.cpp's converter. Weights are random (fixed seed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from gguf.constants import GGMLQuantizationType as T

from ggufkit.converters.bpe import to_unicode
from ggufkit.converters.requantize import FTYPE_OF, quantize_rows
from ggufkit.errors import BadInputError
from ggufkit.families import FAMILIES
from ggufkit.fsutil import atomic_output, check_output
from ggufkit.formats.legacy.blocks import TODAY_PACKERS
from ggufkit.samples import bpe_vocab, old_quants
from ggufkit.samples.legacy_writer import write_legacy

V, CTX, E, H, L = 512, 256, 64, 4, 2  # tiny: n_vocab, n_ctx, n_embd, n_head, n_layer
EOT = b"<|endoftext|>"
QUANT_TYPES = {"q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1, "q8_0": T.Q8_0}
Arrays = list[tuple[str, np.ndarray]]  # (name, numpy array: outermost dim first, i.e. ne reversed)


def _w(rng: np.random.Generator, *shape: int, scale: float = 0.35) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _norm(rng: np.random.Generator, n: int = E) -> tuple[np.ndarray, np.ndarray]:
    return (1 + _w(rng, n, scale=0.1)), _w(rng, n, scale=0.1)


def gpt2_tensors(rng: np.random.Generator, lm_head: bool, mqa: bool = False) -> Arrays:
    """gpt-2 example names; `mqa`: StarCoder's one K/V head, tiled n_head times as its converter did."""
    t: Arrays = [("model/wte", _w(rng, V, E, scale=1.0)), ("model/wpe", _w(rng, CTX, E, scale=0.1))]
    for i in range(L):
        p = f"model/h{i}/"
        g, b = _norm(rng)
        t += [(p + "ln_1/g", g), (p + "ln_1/b", b)]
        w, bias = _w(rng, 3 * E, E), _w(rng, 3 * E, scale=0.1)
        if mqa:
            hd = E // H
            w = np.concatenate([w[:E], np.tile(w[E:E + hd], (H, 1)), np.tile(w[E + hd:E + 2 * hd], (H, 1))])
            bias = np.concatenate([bias[:E], np.tile(bias[E:E + hd], H), np.tile(bias[E + hd:E + 2 * hd], H)])
        t += [(p + "attn/c_attn/w", w), (p + "attn/c_attn/b", bias),
              (p + "attn/c_proj/w", _w(rng, E, E)), (p + "attn/c_proj/b", _w(rng, E, scale=0.1))]
        g, b = _norm(rng)
        t += [(p + "ln_2/g", g), (p + "ln_2/b", b),
              (p + "mlp/c_fc/w", _w(rng, 4 * E, E)), (p + "mlp/c_fc/b", _w(rng, 4 * E, scale=0.1)),
              (p + "mlp/c_proj/w", _w(rng, E, 4 * E)), (p + "mlp/c_proj/b", _w(rng, E, scale=0.1))]
    g, b = _norm(rng)
    t += [("model/ln_f/g", g), ("model/ln_f/b", b)]
    if lm_head:
        t.append(("model/lm_head", _w(rng, V, E)))
    return t


def neox_tensors(rng: np.random.Generator) -> Arrays:
    t: Arrays = [("gpt_neox.embed_in.weight", _w(rng, V, E, scale=1.0))]
    for i in range(L):
        p = f"gpt_neox.layers.{i}."
        for norm in ("input_layernorm", "post_attention_layernorm"):
            g, b = _norm(rng)
            t += [(f"{p}{norm}.weight", g), (f"{p}{norm}.bias", b)]
        # Hugging Face's per-head interleaved QKV rows, as the converter kept them
        for k, (o, n) in {"attention.query_key_value": (3 * E, E), "attention.dense": (E, E),
                          "mlp.dense_h_to_4h": (4 * E, E), "mlp.dense_4h_to_h": (E, 4 * E)}.items():
            t += [(f"{p}{k}.weight", _w(rng, o, n)), (f"{p}{k}.bias", _w(rng, o, scale=0.1))]
    g, b = _norm(rng)
    return t + [("gpt_neox.final_layer_norm.weight", g), ("gpt_neox.final_layer_norm.bias", b),
                ("embed_out.weight", _w(rng, V, E))]


def mpt_tensors(rng: np.random.Generator) -> Arrays:
    t: Arrays = [("transformer.wte.weight", _w(rng, V, E, scale=1.0))]
    for i in range(L):
        p = f"transformer.blocks.{i}."
        t += [(p + "norm_1.weight", _norm(rng)[0]), (p + "attn.Wqkv.weight", _w(rng, 3 * E, E)),
              (p + "attn.out_proj.weight", _w(rng, E, E)), (p + "norm_2.weight", _norm(rng)[0]),
              (p + "ffn.up_proj.weight", _w(rng, 4 * E, E)), (p + "ffn.down_proj.weight", _w(rng, E, 4 * E))]
    return t + [("transformer.norm_f.weight", _norm(rng)[0])]


def falcon_tensors(rng: np.random.Generator, n_head_kv: int, two_norms: bool) -> Arrays:
    hd = E // H
    t: Arrays = [("transformer.word_embeddings.weight", _w(rng, V, E, scale=1.0))]
    for i in range(L):
        p = f"transformer.h.{i}."
        for norm in (("ln_attn", "ln_mlp") if two_norms else ("input_layernorm",)):
            g, b = _norm(rng)
            t += [(f"{p}{norm}.weight", g), (f"{p}{norm}.bias", b)]
        # falcon_convert.py already reordered QKV to [Q | K (n_head_kv) | V (n_head_kv)]
        t += [(p + "self_attention.query_key_value.weight", _w(rng, (H + 2 * n_head_kv) * hd, E)),
              (p + "self_attention.dense.weight", _w(rng, E, E)),
              (p + "mlp.dense_h_to_4h.weight", _w(rng, 4 * E, E)), (p + "mlp.dense_4h_to_h.weight", _w(rng, E, 4 * E))]
    g, b = _norm(rng)
    return t + [("transformer.ln_f.weight", g), ("transformer.ln_f.bias", b), ("lm_head.weight", _w(rng, V, E))]


def gptj_tensors(rng: np.random.Generator) -> Arrays:
    t: Arrays = [("transformer.wte.weight", _w(rng, V, E, scale=1.0))]
    for i in range(L):
        p = f"transformer.h.{i}."
        g, b = _norm(rng)
        t += [(p + "ln_1.weight", g), (p + "ln_1.bias", b)]
        t += [(p + f"attn.{k}_proj.weight", _w(rng, E, E)) for k in ("k", "v", "q", "out")]
        t += [(p + "mlp.fc_in.weight", _w(rng, 4 * E, E)), (p + "mlp.fc_in.bias", _w(rng, 4 * E, scale=0.1)),
              (p + "mlp.fc_out.weight", _w(rng, E, 4 * E)), (p + "mlp.fc_out.bias", _w(rng, E, scale=0.1))]
    g, b = _norm(rng)
    return t + [("transformer.ln_f.weight", g), ("transformer.ln_f.bias", b),
                ("lm_head.weight", _w(rng, V, E)), ("lm_head.bias", _w(rng, V, scale=0.1))]


def rwkv_tensors(rng: np.random.Generator) -> Arrays:
    """RWKV-4 names as rwkv.cpp's converter wrote them (time_decay already -exp(.))."""
    t: Arrays = [("emb.weight", _w(rng, V, E, scale=1.0))]
    for i in range(L):
        p = f"blocks.{i}."
        if i == 0:
            g, b = _norm(rng)
            t += [(p + "ln0.weight", g), (p + "ln0.bias", b)]
        for n in ("ln1", "ln2"):
            g, b = _norm(rng)
            t += [(f"{p}{n}.weight", g), (f"{p}{n}.bias", b)]
        t += [(p + f"att.time_mix_{k}", np.abs(_w(rng, E))) for k in ("k", "v", "r")]
        t += [(p + "att.time_first", _w(rng, E)), (p + "att.time_decay", -np.exp(_w(rng, E)))]
        t += [(p + f"att.{k}.weight", _w(rng, E, E)) for k in ("key", "value", "receptance", "output")]
        t += [(p + f"ffn.time_mix_{k}", np.abs(_w(rng, E))) for k in ("k", "r")]
        t += [(p + "ffn.key.weight", _w(rng, 4 * E, E)), (p + "ffn.receptance.weight", _w(rng, E, E)),
              (p + "ffn.value.weight", _w(rng, E, 4 * E))]
    g, b = _norm(rng)
    return t + [("ln_out.weight", g), ("ln_out.bias", b), ("head.weight", _w(rng, V, E))]


def _vocab(sample: str) -> tuple[list[tuple[bytes, float]], list[tuple[bytes, bytes]]]:
    """(texts as the sample's converter stored them, score) and, for Falcon, the merges."""
    pad = b"<|padding|>"
    if sample in ("gpt2", "cerebras", "gptj"):
        tokens, merges = bpe_vocab.build(V, [], [EOT])  # GPT-2: <|endoftext|> is the last id
    elif sample in ("starcoder",):
        tokens, merges = bpe_vocab.build(V, [EOT])
    elif sample.startswith("falcon"):
        tokens, merges = bpe_vocab.build(V, [b">>S%d<<" % i for i in range(11)] + [EOT])
        # GGCC keeps the merges in Hugging Face's byte-level form (e.g. "Ġ" + "t")
        return [(t, 0.0) for t in tokens], [(to_unicode(a).encode(), to_unicode(b).encode()) for a, b in merges]
    elif sample == "replit":
        tokens, merges = bpe_vocab.build(V, [EOT])
        return [(t.decode("utf-8", "replace").replace(" ", "\u2581").encode(), -float(i))
                for i, t in enumerate(tokens)], []
    elif sample == "rwkv":
        return [], []
    else:
        tokens, merges = bpe_vocab.build(V, [EOT, pad])
    if sample in ("gptneox", "dolly-v2"):  # tokenizer.decode([i]).encode(): byte fragments became U+FFFD
        tokens = [t.decode("utf-8", "replace").encode() for t in tokens]
    elif sample == "mpt":  # each byte as the code point of its value, UTF-8 encoded
        tokens = ["".join(map(chr, t)).encode() for t in tokens]
    return [(t, 0.0) for t in tokens], []


def _spec(sample: str, rng: np.random.Generator) -> tuple[str, str, int | None, dict, Arrays, Callable[[str, int], bool]]:
    """(family, container, version, hparams without ftype, tensors, which tensors are F16/quantized)."""
    big = lambda n, nd: nd == 2 and n != "model/wpe"  # noqa: E731  wpe stays F32 (the mains require it)
    weight = lambda n, nd: nd == 2 and n.endswith(".weight")  # noqa: E731
    gpt = {"n_vocab": V, "n_ctx": CTX, "n_embd": E, "n_head": H, "n_layer": L}
    if sample in ("gpt2", "cerebras"):
        t = gpt2_tensors(rng, lm_head=sample == "cerebras")
        if sample == "gpt2":  # convert-ckpt-to-ggml.py wrote tf.train.list_variables' order: sorted by name
            t.sort(key=lambda x: x[0])
        return "gpt2", "GGML", None, gpt, t, big
    if sample == "starcoder":
        return "starcoder", "GGML", None, gpt, gpt2_tensors(rng, lm_head=True, mqa=True), big
    if sample in ("gptneox", "dolly-v2"):
        hp = {**gpt, "n_rot": E // H // 4, "par_res": int(sample == "dolly-v2")}
        return "gptneox", "GGML", None, hp, neox_tensors(rng), weight
    if sample in ("mpt", "replit"):
        hp = {"n_embd": E, "n_ctx": CTX, "n_head": H, "n_layer": L, "n_vocab": V}
        if sample == "mpt":
            hp.update(alibi_bias_max=8.0, clip_qkv=0.0)
        return sample, "GGML", None, hp, mpt_tensors(rng), weight
    if sample.startswith("falcon"):
        n_head_kv, forty = (2, True) if sample == "falcon40" else (1, False)
        hp = {"n_vocab": V, "n_embd": E, "n_head": H, "n_head_kv": n_head_kv, "n_layer": L, "falcon_type": 40 if forty else 7}
        return "falcon", "GGCC", 10, hp, falcon_tensors(rng, n_head_kv, forty), lambda n, nd: nd == 2
    if sample == "gptj":
        return "gptj", "GGML", None, {**gpt, "n_rot": 8}, gptj_tensors(rng), weight
    if sample == "rwkv":
        hp = {"n_vocab": V, "n_embd": E, "n_layer": L}
        return "rwkv", "RWKV", 101, hp, rwkv_tensors(rng), lambda n, nd: nd == 2 and n not in ("emb.weight", "head.weight")
    raise BadInputError(f"unknown family sample {sample!r} (choose from {', '.join(SAMPLES)})")


SAMPLES = ("gpt2", "cerebras", "starcoder", "gptneox", "dolly-v2", "mpt", "falcon7", "falcon40", "gptj", "replit", "rwkv")
RWKV_TYPE = {T.F32: 0, T.F16: 1, T.Q4_0: 2, T.Q4_1: 3, T.Q5_0: 7, T.Q5_1: 8, T.Q8_0: 9}


def write_family_sample(out: Path, sample: str, type_name: str = "f32", seed: int = 0, force: bool = False) -> Path:
    """A tiny `sample` model (SAMPLES) at f32, f16 or q4_0/q4_1/q5_0/q5_1/q8_0, as its program wrote it."""
    kind = T.F32 if type_name == "f32" else T.F16 if type_name == "f16" else QUANT_TYPES.get(type_name)
    if kind is None:
        raise BadInputError(f"the GGML-era family samples come as f32, f16, {', '.join(QUANT_TYPES)}, not {type_name}")
    if out.suffix.lower() == ".gguf":
        raise BadInputError(f"a {sample} sample is a GGML-era file, not GGUF: give it another name (its era's were .bin)", out)
    check_output(out, [], force)
    family, container, version, hp, arrays, rule = _spec(sample, np.random.default_rng(seed))
    vocab, merges = _vocab(sample)
    ftype = {T.F32: 0, T.F16: 1}.get(kind, FTYPE_OF.get(kind))
    if container == "RWKV":
        hp["data_type"] = RWKV_TYPE[kind]
    else:  # the ggml examples' quantize tools added GGML_QNT_VERSION * 1000; GGCC holds llama_ftype as is
        hp["ftype"] = ftype + (2000 if container == "GGML" and kind not in (T.F32, T.F16) else 0)

    def tensors() -> Iterator[tuple[str, int, tuple[int, ...], bytes]]:
        for name, x in arrays:
            ne = tuple(reversed(x.shape))
            if kind == T.F32 or not rule(name, x.ndim):
                yield name, int(T.F32), ne, x.tobytes()
                continue
            half = x.astype(np.float16)  # quantize tools read the F16 file
            if kind == T.F16:
                yield name, int(T.F16), ne, half.tobytes()
            elif kind in old_quants.GGML_EXAMPLES:
                d, m, q = old_quants.GGML_EXAMPLES[kind](half.astype(np.float32).reshape(-1, 32))
                yield name, int(kind), ne, TODAY_PACKERS[kind].pack(d, m, q).tobytes()
            else:
                rows = quantize_rows(half.astype(np.float32).reshape(-1, ne[0]), kind)
                yield name, int(kind), ne, rows.tobytes()

    with atomic_output(out) as tmp, open(tmp, "wb") as fp:
        write_legacy(fp, FAMILIES[family], hp, vocab, tensors(), container, version, merges)
    return out
