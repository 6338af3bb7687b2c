"""Commands that only read and write headers start fast: no numpy, no gguf-py package, vocabularies kept as
their stored bytes (formats/arrays.py, ggufkit/ggufpy.py, the command tree built for one command).

split, merge and edit are measured against llama-gguf-split and cp in `make bench` (split_bench); here it is
what makes them fast that is checked: which modules a real command line imports, and that the arrays read
lazily are the same values, bytes and answers as read eagerly by gguf-py."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType

from ggufkit.formats.arrays import NumberArray, StringArray, jsonable
from ggufkit.formats.gguf_file import read_gguf, shortest_f32

# Runs `ggufkit ARGS` in this interpreter and prints which of numpy, the gguf package and llama.cpp it loaded.
_IMPORTS = textwrap.dedent("""
    import json, sys
    from ggufkit.cli.app import main
    try:
        main(sys.argv[1:])
    except SystemExit as e:
        code = e.code
    from ggufkit import loadorder
    print(json.dumps({"code": code, "numpy": "numpy" in sys.modules, "gguf": "gguf" in sys.modules,
                      "llama": loadorder._state["handle"] is not None}))
""")


def _imports(*args) -> dict:
    out = subprocess.run([sys.executable, "-c", _IMPORTS, *map(str, args)], capture_output=True, text=True,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


NONE = {"code": 0, "numpy": False, "gguf": False, "llama": False}


def test_split_merge_edit_load_neither_numpy_nor_gguf_py_nor_llama_cpp(samples, tmp_path):
    model = samples.gguf("f16")
    assert _imports("split", model, "--max-tensors", "5", "-o", tmp_path / "m", "-q") == NONE
    first = next(tmp_path.glob("m-00001-of-*.gguf"))
    assert _imports("merge", first, "-o", tmp_path / "merged.gguf", "-q") == NONE
    assert _imports("edit", model, "-o", tmp_path / "e.gguf", "--set", "general.name=x", "-q") == NONE
    # a command that does need them still gets them, and `--set` of a number array brings numpy when it is used
    assert _imports("edit", model, "-o", tmp_path / "e2.gguf", "--set", 'x.list=[1, 2]', "-q")["numpy"]
    g = read_gguf(tmp_path / "e2.gguf")
    assert list(g.kv["x.list"]) == [1, 2]


def test_the_gguf_package_imported_later_shares_the_constants():
    code = textwrap.dedent("""
        import sys, ggufkit
        from gguf.constants import GGUFValueType, Keys
        assert "gguf" not in sys.modules and "numpy" not in sys.modules
        import gguf, gguf.constants
        assert gguf.constants is sys.modules["gguf.constants"]
        assert gguf.GGUFValueType is GGUFValueType and gguf.Keys is Keys
        assert gguf.GGUFReader and gguf.GGUFWriter
        print("ok")
    """)
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout == "ok\n"


def test_lazy_arrays_read_as_gguf_py_reads_them(samples):
    path = samples.gguf("f16")
    ours = read_gguf(path).kv
    theirs = GGUFReader(path)
    arrays = 0
    for field in theirs.fields.values():
        if field.types[:1] != [GGUFValueType.ARRAY] or field.name.startswith("GGUF."):
            continue
        arrays += 1
        value = ours[field.name]
        if field.types[1] == GGUFValueType.STRING:
            assert isinstance(value, StringArray)
            expected = [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
            assert list(value) == expected and value == expected and len(value) == len(expected)
            assert value.index(expected[-1]) == len(expected) - 1
        else:
            assert isinstance(value, NumberArray)
            expected = np.concatenate([field.parts[i] for i in field.data])
            assert np.array_equal(np.asarray(value), expected) and value.numpy().dtype == expected.dtype
            assert value.tolist() == expected.tolist() and value[3] == expected[3]
    assert arrays >= 3  # tokens, scores, token types


def test_string_arrays_keep_their_bytes_and_compare_as_lists():
    items = ["a", "b\0c", "\udcff raw byte", "", "é"]
    a = StringArray.of(items)
    assert a.raw == b"".join(struct.pack("<Q", len(t.encode("utf-8", "surrogateescape")))
                             + t.encode("utf-8", "surrogateescape") for t in items)
    assert list(a) == items and a == items and a[1:3] == items[1:3] and "é" in a
    v1 = StringArray(b"".join(struct.pack("<I", len(t.encode("utf-8", "surrogateescape")))
                              + t.encode("utf-8", "surrogateescape") for t in items), len(items), width=4)
    assert v1 == a and v1.encoded() == a.raw  # a GGUF v1 array is written as v3 stores it
    assert StringArray.of(items).first_c_repeat() is None
    assert StringArray.of(["x", "b\0d", "y", "b"]).first_c_repeat() == 3  # "b\0d" reads as "b" in C
    assert StringArray.of(["x", "y", "x", "y"]).first_c_repeat() == 2
    assert jsonable(StringArray.of([str(i) for i in range(20)])) == {"length": 20, "head": [str(i) for i in range(8)]}
    assert jsonable(NumberArray(struct.pack("<3i", 1, -2, 3), "<i")) == [1, -2, 3]


def test_f32_values_read_as_their_shortest_decimal():
    rng = random.Random(7)
    values = [struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0] for _ in range(20000)]
    values += [1e-5, 1e-6, 0.1, 10000.0, 5e-324 * 0, -0.0, float("inf"), 3.4028234663852886e38]
    for v in values:
        if v != v:
            continue
        assert shortest_f32(v) == float(str(np.float32(v))), v
    assert str(shortest_f32(struct.unpack("<f", struct.pack("<f", 1e-5))[0])) == "1e-05"


@pytest.mark.parametrize("argv", [["--help"], ["-h", "split"], []])
def test_the_whole_command_tree_where_it_is_shown(argv):
    r = subprocess.run([sys.executable, "-m", "ggufkit", *argv], capture_output=True, text=True, timeout=60)
    for name in ("inspect", "convert", "split", "merge", "edit", "diff", "models", "cache"):
        assert f" {name} " in r.stdout, (argv, name)
