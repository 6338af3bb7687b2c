"""Run settings in-process: one source of defaults, the layers (defaults < preset < flags), presets' types."""

from __future__ import annotations

import inspect
import typing
from dataclasses import fields
from pathlib import Path

import pytest

from ggufkit.errors import BadInputError
from ggufkit.runtime.params import SAMPLING_KEYS, LoadParams, RunParams, SamplingParams, StopParams
from ggufkit.runtime.presets import BUILTIN_PRESETS, check_preset, load_preset, toml_types
from ggufkit.runtime.settings import NAMES, RunSettings, default_threads, parse_gpu_layers, setting_types


def test_runtime_values_take_their_defaults_from_run_settings():
    d = RunSettings()
    assert SamplingParams().to_dict() == {**{k: getattr(d, k) for k in SAMPLING_KEYS}, "grammar": None}
    assert StopParams() == StopParams(d.max_tokens, d.stop)
    load = LoadParams(Path("m.gguf"))
    assert (load.n_ctx, load.n_batch, load.use_mmap, load.use_mlock, load.lora_scale, load.warmup) == (
        d.ctx, d.batch, d.mmap, d.mlock, d.lora_scale, d.warmup)
    assert load.n_threads == default_threads() and load.n_gpu_layers == 0
    # built from default settings, the runtime's values are the same as their own defaults
    run = RunParams.from_settings(d, Path("m.gguf"))
    assert (run.load, run.sampling, run.stop) == (load, SamplingParams(), StopParams())


def test_layers_defaults_preset_flags():
    preset = check_preset({"temp": 0.3, "top_k": 7, "ctx": 2048, "stop": ["END"], "mlock": True})
    flags = {"top_k": 9, "temp": None, "stop": (), "mmap": False, "backend_sampling": False}
    s = RunSettings.layered(preset, flags)
    assert s.temp == 0.3 and s.ctx == 2048 and s.mlock is True  # from the preset (the flag was not given)
    assert s.top_k == 9  # the flag wins
    assert s.stop == ("END",)  # an empty flag list is "not given"
    assert s.mmap is False and s.backend_sampling is False  # a given False is a value, not "not given"
    assert s.top_p == RunSettings.top_p  # neither: the default


def test_wants_template_and_derived_values():
    assert not RunSettings().wants_template
    for key, value in (("chat", True), ("template", "llama3"), ("template_file", Path("f")), ("system", "hi")):
        assert RunSettings.layered({}, {key: value}).wants_template, key
    assert RunSettings(threads=3).n_threads == 3 and RunSettings().n_threads == default_threads()
    assert [parse_gpu_layers(v) for v in (None, 0, 7, "12", "all", "MAX", "-1")] == [0, 0, 7, 12, -1, -1, -1]


@pytest.mark.parametrize("change, fragment", [
    ({"ctx": -1}, "--ctx must be >= 0"),
    ({"threads": 0}, "--threads must be >= 1"),
    ({"batch": 0}, "--batch must be >= 1"),
    ({"max_tokens": -2}, "--max-tokens must be >= -1"),
    ({"gpu_layers": "lots"}, "--gpu-layers takes a number or 'all'"),
    ({"gpu_layers": -5}, "--gpu-layers must be >= 0"),
])
def test_check_refuses_out_of_range(change, fragment):
    with pytest.raises(BadInputError, match=fragment):
        RunSettings(**change).check()


def test_params_read_the_grammar_file_and_check_sampling(tmp_path):
    grammar = tmp_path / "g.gbnf"
    grammar.write_text('root ::= "a"\n')
    run = RunParams.from_settings(RunSettings(grammar_file=grammar, temp=0.0, max_tokens=5), tmp_path / "m.gguf")
    assert run.sampling.grammar == 'root ::= "a"\n' and run.sampling.temp == 0.0 and run.stop.max_tokens == 5
    with pytest.raises(BadInputError, match="top_p must be between 0 and 1"):
        RunParams.from_settings(RunSettings(top_p=1.5), tmp_path / "m.gguf")
    with pytest.raises(BadInputError) as e:
        RunParams.from_settings(RunSettings(grammar_file=tmp_path / "none.gbnf"), tmp_path / "m.gguf")
    assert e.value.path == str(tmp_path / "none.gbnf")


def test_preset_values_are_typed_as_run_settings_wants_them():
    out = check_preset({"temp": 1, "lora_scale": 2, "gpu_layers": "all", "template_file": "t.txt",
                        "grammar_file": "g.gbnf", "stop": ["a", "b"], "seed": 3, "top-k": 5})
    assert out == {"temp": 1.0, "lora_scale": 2.0, "gpu_layers": "all", "template_file": Path("t.txt"),
                   "grammar_file": Path("g.gbnf"), "stop": ("a", "b"), "seed": 3, "top_k": 5}
    assert isinstance(out["temp"], float)
    assert check_preset({"lora": ""}) == {"lora": None}  # an empty file name is no file
    assert toml_types(setting_types()["temp"]) == (float, int)
    assert toml_types(setting_types()["gpu_layers"]) == (int, str)
    assert toml_types(setting_types()["threads"]) == (int,)


@pytest.mark.parametrize("doc, fragment", [
    ({"tempo": 1}, "unknown preset setting 'tempo'"),
    ({"temp": "hot"}, "'temp' should be float or int, not str"),
    ({"mmap": 1}, "'mmap' should be bool, not int"),
    ({"ctx": True}, "'ctx' should be int, not bool"),
    ({"stop": [1]}, "'stop' should be a list of strings"),
    ({"stop": "END"}, "'stop' should be list, not str"),
])
def test_bad_preset_values(doc, fragment):
    with pytest.raises(BadInputError, match=fragment):
        check_preset(doc, Path("p.toml"))


def test_every_preset_key_is_a_setting_and_builtins_load():
    assert set(setting_types()) == set(NAMES)
    for name, values in BUILTIN_PRESETS.items():
        assert set(values) <= set(NAMES), name
        settings = RunSettings.layered(load_preset(name), {})
        assert all(getattr(settings, k) == v for k, v in values.items()), name


def test_every_setting_has_a_flag_and_help_defaults_come_from_run_settings():
    """cli/run.py's parameters are the settings (mmap and warmup as --no-mmap, --no-warmup)."""
    from ggufkit.cli.run import run

    params = inspect.signature(run).parameters
    for name in NAMES:
        assert name in params or f"no_{name}" in params, name
    hints = typing.get_type_hints(run, include_extras=True)
    helps = {name: hint.__metadata__[0].help for name, hint in hints.items() if hasattr(hint, "__metadata__")}
    for name in ("temp", "top_k", "top_p", "min_p", "mirostat_tau", "mirostat_eta", "repeat_last_n", "ctx",
                 "batch", "lora_scale"):
        assert helps[name].endswith(f"Default: {getattr(RunSettings, name)}."), (name, helps[name])


def test_run_settings_fields_have_defaults():
    for f in fields(RunSettings):
        assert f.name in NAMES and hasattr(RunSettings, f.name), f.name
