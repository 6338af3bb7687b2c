"""Small shared pieces in-process: Choice enums, byte and count formatting, quantize's output names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggufkit.bench.options import BenchFormat, BenchOptions, GpuRows, Switch
from ggufkit.errors import BadInputError
from ggufkit.runtime.generate import StopReason
from ggufkit.units import human_bytes, human_count


def test_choice_members_are_their_values():
    assert Switch("both") is Switch.BOTH and Switch.BOTH == "both"
    assert f"{StopReason.CONTEXT}" == "context" and str(GpuRows.AUTO) == "auto"
    assert json.dumps({"stop_reason": StopReason.EOS}) == '{"stop_reason": "eos"}'
    assert ", ".join(BenchFormat) == "table, md, csv, json, jsonl"
    with pytest.raises(BadInputError, match="--mmap must be one of on, off, both, not 'maybe'"):
        Switch.parse("maybe", "--mmap")


def test_bench_options_turn_text_into_choices():
    opts = BenchOptions(models=[Path("m.gguf")], mmap="both", gpu="off").check()
    assert opts.mmap is Switch.BOTH and opts.gpu is GpuRows.OFF
    with pytest.raises(BadInputError, match="--gpu must be one of auto, on, off, both"):
        BenchOptions(models=[Path("m.gguf")], gpu="sometimes").check()


def test_sample_choices_match_the_sample_maker():
    from ggufkit.cli.sample import SampleFormat, SampleSize
    from ggufkit.samples.make import FORMATS
    from ggufkit.samples.model import SIZES

    assert [s.value for s in SampleSize] == list(SIZES)
    assert [f.value for f in SampleFormat] == list(FORMATS)


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (1_216_348, "1.16 MiB"), (3 << 30, "3.00 GiB"),
    (5 << 40, "5.00 TiB"), (5 << 50, "5120.00 TiB"),
])
def test_human_bytes(n, text):
    assert human_bytes(n) == text


def test_human_count_with_and_without_a_space():
    assert [human_count(n) for n in (999, 1_970_000, 111_170_000, 6_740_000_000)] == ["999", "1.97M", "111.17M", "6.74B"]
    assert human_count(111_170_000, sep=" ") == "111.17 M"  # bench's table, as llama-bench writes it
    assert human_count(2_500) == "2.50K"


def test_plural():
    from ggufkit.units import plural

    assert [plural(n, "message") for n in (0, 1, 2)] == ["0 messages", "1 message", "2 messages"]
    assert plural(1, "device") == "1 device" and plural(3, "entry", "entries") == "3 entries"


def test_quantize_output_paths():
    from ggufkit.quantize.job import output_paths
    from ggufkit.quantize.quant_types import quant_type

    q4, q8 = quant_type("q4_k_m"), quant_type("Q8_0")
    model = Path("/m/model-f16.gguf")
    # the source's own type is replaced, as llama.cpp users name files
    assert output_paths(model, [q4, q8], None, None, False) == [Path("/m/model-Q4_K_M.gguf"), Path("/m/model-Q8_0.gguf")]
    assert output_paths(model, [q4], None, Path("out"), False) == [Path("out/model-Q4_K_M.gguf")]
    for name, child in [("SmolLM2-135M-Instruct.F16.gguf", "SmolLM2-135M-Instruct-Q4_K_M.gguf"),
                        ("llama-ggml-f16.bin", "llama-Q4_K_M.gguf"), ("ggml-model-f16.gguf", "ggml-model-Q4_K_M.gguf"),
                        ("llama-2-7b.ggmlv3.q4_0.bin", "llama-2-7b-Q4_K_M.gguf"), ("mistral.gguf", "mistral-Q4_K_M.gguf"),
                        ("qwen-bf16-00001-of-00003.gguf", "qwen-Q4_K_M.gguf"), ("f16.gguf", "f16-Q4_K_M.gguf")]:
        assert output_paths(Path(name), [q4], None, Path("o"), True) == [Path("o") / child], name
    assert output_paths(model, [q4], Path("x.gguf"), None, False) == [Path("x.gguf")]
    assert output_paths(model, [q4, q8], None, None, True) == [None, None]  # a dry run writes nothing
    with pytest.raises(BadInputError, match="not both"):
        output_paths(model, [q4], Path("x.gguf"), Path("out"), False)
    with pytest.raises(BadInputError, match="--out-dir"):
        output_paths(model, [q4, q8], Path("x.gguf"), None, False)
