"""Templates (model, built-in, file), the sandbox, presets, and the runtime stream used in-process."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ggufkit.errors import BadInputError
from ggufkit.runtime import templates
from ggufkit.runtime.builtin_templates import BUILTIN_TEMPLATES
from ggufkit.runtime.stops import StopFilter
from tests.conftest import assert_clean_error, json_of as _json

CHAT = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How?"}]


@pytest.fixture(scope="module")
def model(samples):
    return samples.gguf("q4_k_m")




# --- templates -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_builtin_templates_render_every_turn(name):
    text = templates.builtin(name).render(CHAT)
    for part in ("SYS", "Hi", "Hello!", "How?"):
        assert part in text
    assert text.index("SYS") < text.index("Hi") < text.index("Hello!") < text.index("How?")


def test_known_formats_exactly():
    assert templates.builtin("chatml").render(CHAT[1:2]) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert templates.builtin("llama2").render(CHAT) == \
        "[INST] <<SYS>>\nSYS\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How? [/INST]"
    assert templates.builtin("raw").render(CHAT[1:2]) == "Hi"


@pytest.mark.parametrize("source", [
    "{{ messages.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ messages['__class__'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ (messages | attr('__class__')) }}",  # only the sandbox itself can see this one
    "{{ raise_exception('no') }}",
    "{% for %}",
])
def test_hostile_or_broken_model_templates_refused(source):
    with pytest.raises(BadInputError):
        templates.from_model(source)


def test_model_template_used_with_chat(cli, samples, tmp_path):
    from ggufkit.samples.make import SIZES
    from ggufkit.samples.model import write_gguf

    path = tmp_path / "tmpl.gguf"
    write_gguf(path, SIZES["tiny"], f16=True, chat_template=(
        "{% for m in messages %}{{ bos_token if loop.first }}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"))
    chat = _json(cli("run", path, "-p", "hello", "--chat", "-n", "6", "--temp", "0", "--json"))
    plain = _json(cli("run", path, "-p", "[user] hello\n[assistant]", "-n", "6", "--temp", "0", "--json"))
    assert chat["prompt_tokens"] == plain["prompt_tokens"]  # the template's "<s>" did not double the BOS
    assert chat["generated_ids"] == plain["generated_ids"]
    none = _json(cli("run", path, "-p", "hello", "-n", "6", "--temp", "0", "--json"))
    assert none["prompt_tokens"] < chat["prompt_tokens"]  # one-shot: no template unless asked


def test_hostile_model_template_refused_in_one_shot(cli, tmp_path):
    from ggufkit.samples.make import SIZES
    from ggufkit.samples.model import write_gguf

    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.gguf"
    write_gguf(path, SIZES["tiny"], f16=True, chat_template=(
        "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"))
    r = cli("run", path, "-p", "hi", "--chat")
    assert_clean_error(r, 2, str(path), "refused")
    assert not marker.exists()
    ok = cli("run", path, "-p", "hi", "-n", "3")  # one-shot without --chat never touches the template
    assert ok.code == 0


def test_template_file_and_builtin_in_one_shot(cli, model, tmp_path):
    fmt = tmp_path / "fmt.txt"
    fmt.write_text("{{system}}|Q: {{ prompt }}\nA:")
    args = ("-n", "6", "--temp", "0", "--json")
    via_file = _json(cli("run", model, "-p", "hello", "--template-file", fmt, "--system", "be nice", *args))
    plain = _json(cli("run", model, "-p", "be nice|Q: hello\nA:", *args))
    assert via_file["prompt_tokens"] == plain["prompt_tokens"]
    assert via_file["generated_ids"] == plain["generated_ids"]
    raw = _json(cli("run", model, "-p", "hello", "--template", "raw", *args))
    bare = _json(cli("run", model, "-p", "hello", *args))
    assert raw["generated_ids"] == bare["generated_ids"]
    r = cli("run", model, "-p", "hello", "--template", "llama3", "-n", "2", "-v")
    assert r.code == 0 and "template: llama3" in r.err
    assert_clean_error(cli("run", model, "-p", "x", "--template", "nosuch"), 2, "unknown template")
    empty = tmp_path / "empty.txt"
    empty.write_text("no placeholder")
    assert_clean_error(cli("run", model, "-p", "x", "--template-file", empty), 2, "{{prompt}}", str(empty))


def test_template_file_multi_turn():
    t = templates.ChatTemplate("f", "<s>{{system}}U:{{prompt}}B:", kind="file")
    assert t.render(CHAT) == "<s>SYSU:HiB:Hello!<s>U:How?B:"
    t2 = templates.ChatTemplate("f", "U:{{prompt}}B:", kind="file")
    assert t2.render(CHAT[:2]) == "SYS\nU:HiB:"


# --- presets -------------------------------------------------------------------------------------

def test_list_presets(cli):
    r = cli("run", "--list-presets")
    assert r.code == 0
    for name in ("precise", "balanced", "creative"):
        assert name in r.out


def test_preset_file_and_flag_override(cli, model, tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('temp = 0.3\ntop_k = 7\nrepeat_penalty = 1.2\ntemplate = "llama3"\nsystem = "hi"\n')
    r = cli("run", model, "-p", "hello", "-n", "2", "-v", "--preset", preset, "--top-k", "9")
    assert r.code == 0, r.err
    assert "temp(0.3)" in r.err and "top_k(9)" in r.err and "repeat=1.2" in r.err
    assert "template: llama3" in r.err
    r = cli("run", model, "-p", "hello", "-n", "2", "-v", "--preset", "precise")
    assert r.code == 0 and "temp(0.2)" in r.err and "top_k(20)" in r.err


@pytest.mark.parametrize("text,fragment", [
    ("tempo = 1\n", "unknown preset setting"),
    ('temp = "hot"\n', "should be float"),
    ("temp = [\n", "not valid TOML"),
    ("stop = [1]\n", "list of strings"),
])
def test_bad_presets(cli, model, tmp_path, text, fragment):
    preset = tmp_path / "p.toml"
    preset.write_text(text)
    assert_clean_error(cli("run", model, "-p", "x", "--preset", preset), 2, fragment, str(preset))


# --- the runtime stream in-process (the API bench uses) --------------------------------------------

@pytest.fixture(scope="module")
def loaded(model):
    from ggufkit.runtime.model import load
    from ggufkit.runtime.params import LoadParams

    with load(LoadParams(model, n_ctx=512, n_threads=1)) as m:
        yield m


def _gen(m, sp, n=24):
    from ggufkit.runtime.generate import stream
    from ggufkit.runtime.params import StopParams
    from ggufkit.runtime.sampler import build_sampler

    with build_sampler(m, sp) as s:
        return list(stream(m, s, m.tokenize("hello the world hello the world"), StopParams(max_tokens=n)))


def test_each_sampling_parameter_changes_the_output(loaded):
    from ggufkit.runtime.params import SamplingParams

    base = SamplingParams(temp=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=42)
    ref = _gen(loaded, base)[-1].tokens
    assert _gen(loaded, base)[-1].tokens == ref
    changes = dict(temp=0.3, top_k=3, top_p=0.5, min_p=0.3, typical=0.5, mirostat=1, seed=43)
    for name, value in changes.items():
        assert _gen(loaded, replace(base, **{name: value}))[-1].tokens != ref, name
    # penalties against greedy decoding, which on this model repeats itself
    greedy = SamplingParams(temp=0)
    ref = _gen(loaded, greedy)[-1].tokens
    for name, value in dict(repeat_penalty=1.5, presence_penalty=1.0, frequency_penalty=1.0).items():
        assert _gen(loaded, replace(greedy, **{name: value}))[-1].tokens != ref, name
    m2 = replace(base, mirostat=2)
    assert _gen(loaded, m2)[-1].tokens != _gen(loaded, replace(m2, mirostat_tau=1.0))[-1].tokens
    assert _gen(loaded, m2)[-1].tokens != _gen(loaded, replace(m2, mirostat_eta=0.9))[-1].tokens
    pen = replace(greedy, repeat_penalty=1.5)
    assert _gen(loaded, pen)[-1].tokens != _gen(loaded, replace(pen, repeat_last_n=2))[-1].tokens


def test_utf8_split_across_tokens_comes_out_whole(loaded):
    from ggufkit.runtime.generate import TokenEvent
    from ggufkit.runtime.params import SamplingParams

    events = _gen(loaded, SamplingParams(temp=0, grammar='root ::= "é€ok"'))
    done = events[-1]
    pieces = [e.text for e in events if isinstance(e, TokenEvent)]
    assert done.text == "é€ok" and "".join(pieces) == "é€ok"
    assert "" in pieces  # a byte token that is half a character shows nothing yet
    assert done.stop_reason == "eos" and done.n_generated > 4


def test_stop_filter_holds_back_only_possible_stops():
    f = StopFilter(["END", "xyz"])
    assert f.feed("abc E") == ("abc ", False)
    assert f.feed("N") == ("", False)
    assert f.feed("Dless") == ("", True)
    g = StopFilter(["END"])
    assert g.feed("aE") == ("a", False)
    assert g.feed("x") == ("Ex", False)
    assert g.feed("yEN") == ("y", False)
    assert g.feed("D tail") == ("", True)
    h = StopFilter(["stop"])
    assert h.feed("st") == ("", False)
    assert h.flush() == "st"
