"""The conversion cache of legacy inputs: keyed on content, capped with least-recently-used eviction,
and `ggufkit cache list|clear` (issue 17)."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from ggufkit.converters import cache
from tests.conftest import assert_clean_error


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GGUFKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GGUFKIT_CACHE_MAX", raising=False)
    return tmp_path / "cache" / "converted"


def test_a_remade_identical_file_reuses_its_conversion(samples, tmp_path, cache_home):
    legacy = samples.ggjt3("q4_0")
    first, _ = cache.open_as_gguf(legacy)
    remade = tmp_path / "remade.bin"  # same bytes, another name and a new mtime: as a remade sample
    shutil.copyfile(legacy, remade)
    os.utime(remade, (1, 1))
    again, _ = cache.open_as_gguf(remade)
    assert again == first and len(cache.entries()) == 1


def test_changed_content_of_the_same_size_gets_its_own_entry(samples, tmp_path, cache_home):
    legacy = samples.ggjt3("f16")
    changed = tmp_path / "changed.bin"
    data = bytearray(legacy.read_bytes())
    data[-2] ^= 0x01  # the last weight's low bits: the sampled blocks reach the file's end
    changed.write_bytes(bytes(data))
    assert cache.content_key(changed) != cache.content_key(legacy)
    a, _ = cache.open_as_gguf(legacy)
    b, _ = cache.open_as_gguf(changed)
    assert a != b and len(cache.entries()) == 2


def test_the_cap_evicts_the_least_recently_used(samples, tmp_path, cache_home, monkeypatch):
    old, mid = samples.ggjt3("q4_0"), samples.ggjt3("q8_0")
    new = tmp_path / "new.bin"  # another q4_0 model of the same size
    data = bytearray(old.read_bytes())
    data[-2] ^= 0x01
    new.write_bytes(bytes(data))
    a, _ = cache.open_as_gguf(old)
    b, _ = cache.open_as_gguf(mid)
    os.utime(a, (1000, 1000))
    os.utime(b, (2000, 2000))
    cache.open_as_gguf(old)  # a hit marks it used now: mid is now the least recently used
    assert a.stat().st_mtime > 2000
    monkeypatch.setenv("GGUFKIT_CACHE_MAX", str(2 * a.stat().st_size))
    notes: list[str] = []
    c, _ = cache.open_as_gguf(new, notes.append)
    assert {e.path for e in cache.entries()} == {a, c}
    assert any("removed 1 least recently used" in n for n in notes), notes


def test_an_entry_over_the_cap_alone_is_kept_while_in_use(samples, cache_home, monkeypatch):
    monkeypatch.setenv("GGUFKIT_CACHE_MAX", "0")
    a, _ = cache.open_as_gguf(samples.ggjt3("q4_0"))
    b, _ = cache.open_as_gguf(samples.ggjt3("q8_0"))
    assert [e.path for e in cache.entries()] == [b]


def test_bad_cap_is_one_error_line(cli, samples, cache_home, monkeypatch):
    monkeypatch.setenv("GGUFKIT_CACHE_MAX", "lots")
    r = cli("run", samples.ggjt3("q4_0"), "-p", "hi", "-n", "1")
    assert r.code == 2 and r.err.strip().splitlines() == [
        "ggufkit: error: GGUFKIT_CACHE_MAX: 'lots' is not a size (e.g. 10GiB, 500M)"]


def test_cache_list_and_clear(cli, samples, cache_home):
    empty = cli("cache", "list")
    assert empty.code == 0 and empty.out.startswith("0 file(s), 0 B of 10.00 GiB in ") and str(cache_home) in empty.out
    cache.open_as_gguf(samples.ggjt3("q4_0"))
    listed = cli("cache", "list", "--json")
    doc = json.loads(listed.out)
    assert doc["path"] == str(cache_home) and doc["max_bytes"] == 10 << 30
    assert [e["source"] for e in doc["entries"]] == ["tiny-q4_0"] and doc["total_bytes"] > 0
    assert "tiny-q4_0" in cli("cache", "list").out
    cleared = cli("cache", "clear")
    assert cleared.code == 0 and "removed 1 file(s)" in cleared.err
    assert list(cache_home.iterdir()) == []


def test_cache_rm_and_prune(cli, samples, tmp_path, cache_home):
    q4, _ = cache.open_as_gguf(samples.ggjt3("q4_0"))
    q8, _ = cache.open_as_gguf(samples.ggjt3("q8_0"))
    renamed = tmp_path / "tiny-q4_0.bin"  # another model under q4_0's name: both entries go with that name
    data = bytearray(samples.ggjt3("q4_0").read_bytes())
    data[-2] ^= 0x01
    renamed.write_bytes(bytes(data))
    q4b, _ = cache.open_as_gguf(renamed)
    assert_clean_error(cli("cache", "rm", "nothing"), 2, "no cached conversion is named 'nothing'")
    r = cli("cache", "rm", "tiny-q4_0")
    assert r.code == 0 and r.err.startswith("ggufkit: removed 2 file(s)")
    assert [e.path for e in cache.entries()] == [q8]
    q4, _ = cache.open_as_gguf(samples.ggjt3("q4_0"))
    key = cache.entries()[-1].key
    assert cli("cache", "rm", key[:6]).code == 0 and [e.path for e in cache.entries()] == [q8]

    q4, _ = cache.open_as_gguf(samples.ggjt3("q4_0"))
    os.utime(q8, (time.time() - 3 * 86400,) * 2)  # last used three days ago
    assert_clean_error(cli("cache", "prune", "--older-than", "soon"), 2, "not a duration")
    r = cli("cache", "prune", "--older-than", "2d")
    assert r.code == 0 and "removed 1 file(s) not used for 2d" in r.err
    assert [e.path for e in cache.entries()] == [q4]


def test_a_legacy_file_is_sniffed_once_on_the_run_path(samples, cache_home, monkeypatch):
    """open_as_gguf tells a legacy file from a GGUF once; the legacy reader then refuses a GGUF itself."""
    import sys

    from ggufkit.converters import engine  # noqa: F401  every module on the path, loaded before the count
    from ggufkit.formats import detect

    legacy = samples.ggjt3("q4_0")
    seen = []

    def counted(path):
        seen.append(path)
        return real(path)

    real = detect.sniff
    for module in [m for name, m in sys.modules.items() if name.startswith("ggufkit.")]:
        if getattr(module, "sniff", None) is real:
            monkeypatch.setattr(module, "sniff", counted)
    cache.open_as_gguf(legacy)
    assert seen == [legacy]
