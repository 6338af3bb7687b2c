"""`edit` end to end: edits read back through gguf-py, tensor data unchanged, the input untouched (or, with
--in-place, replaced whole); refusals are one line and leave nothing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.constants import GGUFValueType as V
from gguf.constants import Keys

from ggufkit.errors import BadInputError
from ggufkit.runtime.builtin_templates import BUILTIN_TEMPLATES
from ggufkit.runtime.templates import checked_source
from ggufkit.surgery.edit import Edits, edit
from tests.conftest import assert_clean_error, json_of


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_of(path: Path) -> list[tuple[str, bytes]]:
    return [(t.name, np.asarray(t.data).tobytes()) for t in gguf.GGUFReader(path).tensors]


@pytest.fixture(scope="module")
def tiny(samples) -> Path:
    return samples.gguf("q8_0")


def test_edits_read_back_through_gguf_py(cli, tiny, tmp_path):
    before = sha(tiny)
    out = tmp_path / "e.gguf"
    doc = json_of(cli("edit", tiny, "-o", out, "--json",
                      "--set", "general.name=Edited", "--set", "llama.context_length=4096",
                      "--set", "llama.rope.freq_base=500000", "--set", "my.flag=true", "--set", "my.list=[1, 2, 3]",
                      "--set", 'my.text="42"', "--remove", "general.file_type",
                      "--chat-template", "chatml", "--special-token", "eos=<s>", "--special-token", "pad=3"))
    assert sha(tiny) == before and sorted(p.name for p in tmp_path.iterdir()) == ["e.gguf"]
    r = gguf.GGUFReader(out)
    f = r.fields
    assert f[Keys.General.NAME].contents() == "Edited"
    assert (f["llama.context_length"].types, f["llama.context_length"].contents()) == ([V.UINT32], 4096)  # kept its type
    assert f["llama.rope.freq_base"].types == [V.FLOAT32] and f["llama.rope.freq_base"].contents() == 500000.0
    assert (f["my.flag"].types, f["my.flag"].contents()) == ([V.BOOL], True)
    assert f["my.list"].types == [V.ARRAY, V.INT32] and f["my.list"].contents() == [1, 2, 3]
    assert (f["my.text"].types, f["my.text"].contents()) == ([V.STRING], "42")
    assert Keys.General.FILE_TYPE not in f
    assert f[Keys.Tokenizer.CHAT_TEMPLATE].contents() == BUILTIN_TEMPLATES["chatml"]
    assert f[Keys.Tokenizer.EOS_ID].contents() == 1 and f[Keys.Tokenizer.PAD_ID].contents() == 3  # "<s>" is token 1
    assert data_of(out) == data_of(tiny)
    # a replaced key keeps its place, a new one comes last
    keys = [k for k in f if not k.startswith("GGUF.")]
    old = [k for k in gguf.GGUFReader(tiny).fields if not k.startswith("GGUF.") and k != Keys.General.FILE_TYPE]
    assert keys[:len(old)] == old
    assert {c["key"]: c["action"] for c in doc["changes"]}[Keys.General.FILE_TYPE] == "remove"
    assert cli("run", out, "-p", "hello", "-n", "2", "--temp", "0").code == 0  # llama.cpp loads the edit


def test_in_place_replaces_the_file_whole(cli, tiny, tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(tiny.read_bytes())
    os.chmod(model, 0o640)
    inode = model.stat().st_ino
    r = cli("edit", model, "--in-place", "--set", "general.name=Renamed")
    assert r.code == 0, r.err
    assert "in place" in r.out and [p.name for p in tmp_path.iterdir()] == ["m.gguf"]  # nothing left beside it
    assert model.stat().st_ino != inode and (model.stat().st_mode & 0o777) == 0o640  # a new file, same mode
    assert gguf.GGUFReader(model).fields[Keys.General.NAME].contents() == "Renamed"
    assert data_of(model) == data_of(tiny)


@pytest.mark.parametrize("edits, fragments", [
    (Edits(sets=["general.alignment=64"]), ["general.alignment", "refused", "wrong bytes"]),
    (Edits(sets=["llama.embedding_length=512"]), ["llama.embedding_length", "refused", "shapes"]),
    (Edits(removes=["llama.block_count"]), ["llama.block_count", "refused"]),
    (Edits(sets=["split.count=2"]), ["split.count", "refused", "ggufkit split"]),
    (Edits(sets=["llama.context_length=long"]), ["llama.context_length", "uint32", "not an integer"]),
    (Edits(sets=["llama.context_length=-1"]), ["llama.context_length", "outside 0..4294967295"]),
    (Edits(sets=["tokenizer.ggml.bos_token_id=99999"]), ["bos_token_id", "outside the vocabulary"]),
    (Edits(sets=["general.tags=[1, \"a\"]"]), ["general.tags", "all be text, all numbers"]),
    (Edits(special_tokens=["eos=<nope>"]), ["no token '<nope>'"]),
    (Edits(special_tokens=["boss=1"]), ["ROLE"]),
    (Edits(removes=["no.such.key"]), ["no.such.key", "no such key"]),
    (Edits(sets=["novalue"]), ["KEY=VALUE"]),
    (Edits(), ["nothing to change"]),
])
def test_refusals_leave_nothing(tiny, tmp_path, edits, fragments):
    """The core's refusals (the CLI turns each into one line: see the test below)."""
    before = sha(tiny)
    with pytest.raises(BadInputError) as e:
        edit(tiny, edits, tmp_path / "e.gguf")
    assert all(f in str(e.value) for f in fragments), str(e.value)
    assert list(tmp_path.iterdir()) == [] and sha(tiny) == before


def test_a_refusal_is_one_line(cli, tiny, tmp_path):
    r = cli("edit", tiny, "-o", tmp_path / "e.gguf", "--set", "llama.attention.head_count=8")
    assert_clean_error(r, 2, "llama.attention.head_count: refused")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("template, fragment", [
    ("{% for m in messages %}{{ m.content }", "does not parse"),
    ("{{ messages.__class__.__mro__ }}", "it reaches for '__"),
    ("{{ cycler.__init__.__globals__.os }}", "could escape the sandbox"),
    ("{{ raise_exception('no') }}", "rejected the conversation"),
])
def test_bad_templates_are_refused_before_anything_is_written(cli, tiny, tmp_path, template, fragment):
    t = tmp_path / "t.jinja"
    t.write_text(template)
    with pytest.raises(BadInputError, match=fragment) as e:
        checked_source(str(t))
    assert e.value.path == str(t)
    assert_clean_error(cli("edit", tiny, "-o", tmp_path / "e.gguf", "--chat-template", t), 2, str(t), fragment)
    assert not (tmp_path / "e.gguf").exists()


def test_a_template_that_is_neither_file_nor_name(cli, tiny, tmp_path):
    assert_clean_error(cli("edit", tiny, "-o", tmp_path / "e.gguf", "--chat-template", "nosuchname"), 2,
                       "neither a file nor a template name")
    assert not (tmp_path / "e.gguf").exists()


def test_one_of_output_or_in_place_and_gguf_only(cli, tiny, samples, tmp_path):
    assert_clean_error(cli("edit", tiny, "--set", "a=1"), 2, "-o OUT or --in-place")
    assert_clean_error(cli("edit", tiny, "-o", tmp_path / "x.gguf", "--in-place", "--set", "a=1"), 2, "-o OUT or --in-place")
    assert_clean_error(cli("edit", samples.ggjt3("f16"), "-o", tmp_path / "x.gguf", "--set", "a=1"), 2,
                       "convert it first")
    assert_clean_error(cli("edit", tiny, "-o", tiny, "--set", "a=1", "--force"), 2, "overwrite the input")


def test_first_shard_in_place_edits_the_split_model(cli, tiny, tmp_path):
    assert cli("split", tiny, "--max-tensors", "10", "-o", tmp_path / "m", "-q").code == 0
    first, second = tmp_path / "m-00001-of-00003.gguf", tmp_path / "m-00002-of-00003.gguf"
    untouched = sha(second)
    assert_clean_error(cli("edit", first, "-o", tmp_path / "x.gguf", "--set", "a=1"), 2, "split model", "--in-place")
    assert cli("edit", first, "--in-place", "--set", "general.name=Split", "-q").code == 0
    assert sha(second) == untouched
    doc = json_of(cli("inspect", first, "--json"))
    assert doc["name"] == "Split" and len(doc["tensors"]) == len(gguf.GGUFReader(tiny).tensors)


def test_a_value_already_there_is_no_change(tiny, tmp_path):
    name = gguf.GGUFReader(tiny).fields[Keys.General.NAME].contents()
    report = edit(tiny, Edits(sets=[f"general.name={name}"]), tmp_path / "e.gguf")
    assert report.changes == []
    assert (tmp_path / "e.gguf").read_bytes() == tiny.read_bytes()  # written as gguf.cpp writes: the same bytes
