"""`ggufkit doctor` reports what this llama.cpp build really has."""

from __future__ import annotations

import json

from tests.conftest import gpu_build


def test_doctor_json_matches_the_build(cli):
    import llama_cpp

    r = cli("doctor", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["software"]["llama_cpp_python"] == llama_cpp.__version__
    assert d["build"]["gpu_offload"] == gpu_build()
    assert "CPU" in d["build"]["backends"]
    assert any(dev["type"] == "CPU" for dev in d["build"]["devices"])
    assert d["machine"]["cores"] >= 1 and d["machine"]["ram_bytes"] > 0


def test_doctor_text_gives_gpu_advice_on_cpu_builds(cli):
    r = cli("doctor")
    assert r.code == 0 and "backends:" in r.out and "gpu offload:" in r.out
    if not gpu_build():
        assert "GGUFKIT_GPU=cuda make install" in r.out
