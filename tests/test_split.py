"""`split` and `merge` end to end: the layout llama-gguf-split guarantees, read back with gguf-py; the real
SmolLM2 split by size and by tensor count, loaded and run by llama.cpp from its first shard; merge round
trips. (Byte identity with llama-gguf-split itself: benchmarks/split_bench.py, which builds it.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.constants import GGUFValueType as V
from gguf.constants import Keys

from ggufkit import models
from ggufkit.formats.gguf_file import read_gguf
from tests.conftest import assert_clean_error, json_of

SPLIT_KEYS = [Keys.Split.LLM_KV_SPLIT_NO, Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, Keys.Split.LLM_KV_SPLIT_COUNT]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fields(r: gguf.GGUFReader) -> list[str]:
    return [k for k in r.fields if not k.startswith("GGUF.")]


def check_layout(src: Path, shards: list[Path], per_shard: int | None = None, max_bytes: int | None = None) -> None:
    """What llama-gguf-split guarantees, read back with gguf-py's reader."""
    whole = gguf.GGUFReader(src)
    n = len(shards)
    names = []
    for i, path in enumerate(shards):
        r = gguf.GGUFReader(path)
        keys = fields(r)
        # metadata only in the first shard, in the input's order; then the three split keys, in this order
        assert keys == ([*fields(whole), *SPLIT_KEYS] if i == 0 else SPLIT_KEYS), (path, keys)
        split_no, tensors_count, count = (r.fields[k] for k in SPLIT_KEYS)
        assert (split_no.types, tensors_count.types, count.types) == ([V.UINT16], [V.INT32], [V.UINT16])
        assert (split_no.contents(), tensors_count.contents(), count.contents()) == (i, len(whole.tensors), n)
        data = [t for t in r.tensors]
        assert all(t.data_offset % 32 == 0 for t in data)
        if per_shard is not None:
            assert len(data) == (per_shard if i < n - 1 else len(whole.tensors) - per_shard * (n - 1))
        if max_bytes is not None and len(data) > 1:
            assert sum(t.n_bytes + -t.n_bytes % 32 for t in data) <= max_bytes
        names += [t.name for t in data]
        last = data[-1] if data else None
        end = last.data_offset + last.n_bytes + -last.n_bytes % 32 if last else None
        assert end is None or path.stat().st_size == end  # each tensor padded, nothing after the last
        for t in data:  # tensor data unchanged
            orig = next(o for o in whole.tensors if o.name == t.name)
            assert (orig.tensor_type, list(orig.shape)) == (t.tensor_type, list(t.shape))
            assert np.array_equal(np.asarray(orig.data).view(np.uint8), np.asarray(t.data).view(np.uint8))
    assert names == [t.name for t in whole.tensors]  # every tensor once, in file order


@pytest.fixture(scope="module")
def tiny(samples) -> Path:
    return samples.gguf("f16")


def test_split_by_tensor_count_layout_and_merge(cli, tiny, tmp_path):
    before = sha(tiny)
    r = cli("split", tiny, "--max-tensors", "8", "-o", tmp_path / "m.gguf", "--json")
    doc = json_of(r)
    shards = [tmp_path / f"m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert [o["path"] for o in doc["outputs"]] == [str(p) for p in shards]
    assert sorted(tmp_path.iterdir()) == shards and sha(tiny) == before
    assert [o["bytes"] for o in doc["outputs"]] == [p.stat().st_size for p in shards]
    check_layout(tiny, shards, per_shard=8)
    merged = tmp_path / "merged.gguf"
    assert cli("merge", shards[0], "-o", merged, "-q").code == 0
    r = gguf.GGUFReader(merged)
    # llama-gguf-split --merge: the first shard's metadata, split.count now 0, every tensor in order
    assert fields(r) == [*fields(gguf.GGUFReader(tiny)), *SPLIT_KEYS]
    assert r.fields[Keys.Split.LLM_KV_SPLIT_COUNT].contents() == 0
    assert cli("diff", tiny, merged, "-q").code == 0  # same model, byte for byte (split keys aside)
    original = tmp_path / "original.gguf"
    assert cli("merge", shards[0], "-o", original, "--drop-split-keys", "-q").code == 0
    assert sha(original) == before  # the sample as gguf-py's GGUFWriter wrote it
    # split again from the merged file: byte for byte the first split
    again = tmp_path / "again"
    again.mkdir()
    assert cli("split", merged, "--max-tensors", "8", "-o", again / "m", "-q").code == 0
    assert [sha(again / p.name) for p in shards] == [sha(p) for p in shards]


def test_inspect_first_shard_sees_the_whole_model(cli, tiny, tmp_path):
    assert cli("split", tiny, "--max-size", "1M", "-o", tmp_path, "-q").code == 0  # a folder: named after the input
    first = next(tmp_path.glob(f"{tiny.stem}-00001-of-*.gguf"))
    doc, whole = json_of(cli("inspect", first, "--json")), json_of(cli("inspect", tiny, "--json"))
    assert len(doc["shards"]) == len(list(tmp_path.iterdir())) > 1
    assert doc["file_size"] == sum(s["bytes"] for s in doc["shards"]) == sum(p.stat().st_size for p in tmp_path.iterdir())
    assert [t["name"] for t in doc["tensors"]] == [t["name"] for t in whole["tensors"]]
    assert doc["parameters"] == whole["parameters"] and whole["shards"] == []
    text = cli("inspect", first).out
    assert f"in {len(doc['shards'])} shards" in text and f"{tiny.stem}-00002-of-" in text


def packed_by_size(tiny: Path, outputs: list[dict], limit: int) -> bool:
    """llama-gguf-split's cut: each shard's padded tensor data fits `limit`, and the next shard's first tensor
    would not have fitted."""
    sizes = [t.n_bytes + -t.n_bytes % 32 for t in gguf.GGUFReader(tiny).tensors]
    i = 0
    for k, o in enumerate(outputs):
        group = sizes[i:i + o["tensors"]]
        i += o["tensors"]
        if sum(group) > limit or (k + 1 < len(outputs) and sum(group) + sizes[i] <= limit):
            return False
    return i == len(sizes)


def test_bench_measures_a_split_model_from_its_first_shard(cli, tiny, tmp_path):
    assert cli("split", tiny, "--max-tensors", "8", "-o", tmp_path / "m", "-q").code == 0
    r = cli("bench", tmp_path / "m-00001-of-00003.gguf", "-p", "8", "-n", "4", "-r", "1", "-t", "1", "-ngl", "all",
            "--format", "json", "-q")
    row = json_of(r)["rows"][0]
    assert row["error"] is None and row["tg_tps"] > 0
    assert row["size_bytes"] == sum(p.stat().st_size for p in tmp_path.iterdir())


def test_dry_run_writes_nothing_and_sizes_are_decimal(cli, tiny, tmp_path):
    doc = json_of(cli("split", tiny, "--max-size", "900K", "-o", tmp_path / "m", "--dry-run", "--json"))
    assert doc["dry_run"] and list(tmp_path.iterdir()) == []
    assert packed_by_size(tiny, doc["outputs"], 900_000)  # llama-gguf-split's units are powers of 1000
    binary = json_of(cli("split", tiny, "--max-size", "900KiB", "-o", tmp_path / "m", "--dry-run", "--json"))
    assert packed_by_size(tiny, binary["outputs"], 900 << 10)
    assert [o["tensors"] for o in binary["outputs"]] != [o["tensors"] for o in doc["outputs"]]


def test_split_refusals(cli, tiny, tmp_path):
    assert_clean_error(cli("split", tiny, "-o", tmp_path / "m"), 2, "--max-size or --max-tensors")
    assert_clean_error(cli("split", tiny, "--max-size", "10", "-o", tmp_path / "m"), 2, "token_embd.weight",
                       "more than --max-size")
    assert_clean_error(cli("split", tiny, "--max-size", "ten", "-o", tmp_path / "m"), 2, "not a size")
    # a shard name already taken: nothing is written, not even the shards before it
    (tmp_path / "m-00002-of-00003.gguf").write_bytes(b"mine")
    assert_clean_error(cli("split", tiny, "--max-tensors", "8", "-o", tmp_path / "m"), 2, "m-00002-of-00003.gguf",
                       "--force")
    assert [p.name for p in tmp_path.iterdir()] == ["m-00002-of-00003.gguf"]
    assert_clean_error(cli("merge", tiny), 2, "not a split model")


def test_merge_checks_every_shard_first(cli, tiny, tmp_path):
    assert cli("split", tiny, "--max-tensors", "8", "-o", tmp_path / "m", "-q").code == 0
    third = tmp_path / "m-00003-of-00003.gguf"
    third.write_bytes(third.read_bytes()[:-100])
    r = cli("merge", tmp_path / "m-00001-of-00003.gguf", "-o", tmp_path / "out.gguf")
    assert_clean_error(r, 2, str(third), "truncated")
    third.unlink()
    r = cli("merge", tmp_path / "m-00001-of-00003.gguf", "-o", tmp_path / "out.gguf")
    assert_clean_error(r, 2, str(third), "shard 3 of 3 is missing")
    assert not (tmp_path / "out.gguf").exists()
    assert_clean_error(cli("run", tmp_path / "m-00002-of-00003.gguf", "-p", "hi"), 2, "give the first shard",
                       "m-00001-of-00003.gguf")


@pytest.fixture(scope="module")
def smol_split(tmp_path_factory):
    """The real SmolLM2 split by size and by tensor count."""
    from tests.conftest import run_cli

    smol = models.model_path("smollm2")
    out = tmp_path_factory.mktemp("smol")
    by_size = json_of(run_cli("split", smol, "--max-size", "40M", "-o", out / "size", "--json"))
    by_count = json_of(run_cli("split", smol, "--max-tensors", "100", "-o", out / "count", "--json"))
    return smol, [Path(o["path"]) for o in by_size["outputs"]], [Path(o["path"]) for o in by_count["outputs"]]


def data_section(path: Path) -> bytes:
    g = read_gguf(path, whole=False)
    with open(path, "rb") as f:
        f.seek(g.data_offset)
        return f.read()


def test_smollm2_split_by_size_and_by_tensor_count(smol_split):
    """gguf-py's reader takes seconds on SmolLM2's vocabulary: the layout is read with ggufkit's here (and
    checked with gguf-py's on the tiny sample above)."""
    smol, by_size, by_count = smol_split
    whole = read_gguf(smol)
    for shards in (by_size, by_count):
        assert len(shards) == 3
        parts = [read_gguf(p, whole=False) for p in shards]
        for i, g in enumerate(parts):
            keys = [k for k in g.kv if k not in SPLIT_KEYS]
            assert keys == (list(whole.kv) if i == 0 else [])
            assert list(g.kv)[-3:] == SPLIT_KEYS and [g.kv[k] for k in SPLIT_KEYS] == [i, len(whole.tensors), 3]
        assert [t.name for g in parts for t in g.tensors] == [t.name for t in whole.tensors]
        # each tensor padded to 32 bytes, in order: the shards' data sections joined are the original's
        assert b"".join(map(data_section, shards)) == data_section(smol)
    sizes = [sum(t.nbytes + -t.nbytes % 32 for t in read_gguf(p, whole=False).tensors) for p in by_size]
    assert max(sizes) <= 40_000_000
    assert [len(read_gguf(p, whole=False).tensors) for p in by_count] == [100, 100, len(whole.tensors) - 200]


def test_smollm2_first_shard_generates_what_the_whole_file_does(cli, smol_split, tmp_path):
    smol, by_size, _ = smol_split
    args = ("-p", "The capital of France is", "-n", "8", "--temp", "0", "--ctx", "128", "--threads", "1",
            "-ngl", "all", "--json")
    whole, split = json_of(cli("run", smol, *args)), json_of(cli("run", by_size[0], *args))
    assert split["generated_ids"] == whole["generated_ids"] and split["text"] == whole["text"]
    merged = tmp_path / "merged.gguf"
    assert cli("merge", by_size[0], "-o", merged, "-q").code == 0
    assert cli("diff", smol, merged, "-q").code == 0  # the same model, byte for byte (split keys aside)
    assert data_section(merged) == data_section(smol)
    original = tmp_path / "original.gguf"
    assert cli("merge", by_size[0], "-o", original, "--drop-split-keys", "-q").code == 0
    assert sha(original) == sha(smol)  # the very file that was split (llama.cpp's quantizer wrote it)


def test_quantize_and_convert_split_their_outputs(cli, samples, tmp_path):
    r = cli("quantize", samples.gguf("f32"), "-t", "q8_0", "-o", tmp_path / "q.gguf", "--split-max-size", "1M",
            "--json")
    doc = json_of(r)
    shards = sorted(tmp_path.glob("q-*.gguf"))
    assert doc["outputs"] == [str(p) for p in shards] and len(shards) > 1
    assert sorted(tmp_path.iterdir()) == shards  # the scratch file is gone
    one = tmp_path / "one.gguf"
    assert cli("quantize", samples.gguf("f32"), "-t", "q8_0", "-o", one, "-q").code == 0
    assert cli("diff", one, shards[0], "-q").code == 0  # the same model as quantized into one file
    assert doc["output_bytes"] == sum(p.stat().st_size for p in shards)
    assert cli("run", shards[0], "-p", "hello", "-n", "2", "--temp", "0", "-ngl", "all").code == 0
    conv = tmp_path / "conv"
    conv.mkdir()
    r = cli("convert", samples.ggjt3("q4_0"), "-o", conv / "c.gguf", "--split-max-size", "500K", "--json")
    doc = json_of(r)
    assert doc["shards"] == [str(p) for p in sorted(conv.glob("c-*.gguf"))] and doc["output"] == doc["shards"][0]
    assert len(doc["shards"]) > 1 and sorted(conv.iterdir()) == [Path(p) for p in doc["shards"]]
    assert cli("diff", samples.ggjt3("q4_0"), doc["output"], "-q").code == 0  # what it converts to, in shards
    assert_clean_error(cli("convert", samples.ggjt3("q4_0"), "-o", conv / "c.gguf", "--split-max-size", "500K"), 2,
                       "c-00001-of-", "--force")
