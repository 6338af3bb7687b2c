"""The chat context in-process, on a real tiny model: which turns go when the context fills, what a
failed turn leaves behind, the BOS rule, and saved conversations."""

from __future__ import annotations

import json

import pytest

from ggufkit.errors import BadInputError
from ggufkit.runtime.chat import ChatSession, _common_prefix, load_messages, tokenize_rendered
from ggufkit.runtime.params import SamplingParams, StopParams
from ggufkit.runtime.templates import ChatTemplate, TemplateKind

N_CTX = 256
WORDS = " ".join(["hello the world"] * 10)  # ~30 tokens a turn


@pytest.fixture(scope="module")
def model(samples):
    from ggufkit.runtime.model import load
    from ggufkit.runtime.params import LoadParams

    with load(LoadParams(samples.gguf("f16"), n_ctx=N_CTX, n_threads=1, warmup=False)) as m:
        yield m


@pytest.fixture
def chat(model):
    template = ChatTemplate("file", "U: {{prompt}}\nB:", kind=TemplateKind.FILE)
    session = ChatSession(model, template, SamplingParams(temp=0), StopParams(max_tokens=16), system="be brief")
    yield session
    session.close()


def _exchanges(chat: ChatSession, n: int) -> None:
    for i in range(n):
        chat.messages += [{"role": "user", "content": f"{i} {WORDS}"}, {"role": "assistant", "content": WORDS}]


def test_a_conversation_that_fits_is_left_alone(chat):
    _exchanges(chat, 1)
    chat.messages.append({"role": "user", "content": "hi"})
    before = list(chat.messages)
    tokens, dropped = chat._fit()
    assert dropped == 0 and chat.messages == before
    assert tokens == chat.tokenize(chat.template.render(chat.messages))


def test_full_context_drops_oldest_exchanges_keeps_system_and_new_turn(chat):
    _exchanges(chat, 8)  # far more than 256 tokens
    chat.messages.append({"role": "user", "content": "the newest"})
    tokens, dropped = chat._fit()
    assert dropped > 0
    assert chat.messages[0] == {"role": "system", "content": "be brief"}
    assert chat.messages[-1] == {"role": "user", "content": "the newest"}
    rest = chat.messages[1:-1]
    assert [m["role"] for m in rest] == ["user", "assistant"] * (len(rest) // 2)  # whole exchanges only
    assert rest[0]["content"].startswith(f"{dropped} ")  # the oldest went first
    assert len(tokens) + 16 <= N_CTX  # room left for the reply (max_tokens)
    assert len(rest) // 2 == 8 - dropped


def test_reply_room_is_capped_at_half_the_context(chat):
    chat.stop = StopParams(max_tokens=10_000)
    _exchanges(chat, 8)
    chat.messages.append({"role": "user", "content": "x"})
    tokens, _ = chat._fit()
    assert len(tokens) + N_CTX // 2 <= N_CTX


def test_a_message_larger_than_the_context_is_refused_and_forgotten(chat):
    _exchanges(chat, 1)
    with pytest.raises(BadInputError, match="context holds 256"):
        list(chat.send(" ".join(["hello the world"] * 200)))
    # the failed turn is gone; so are the exchanges dropped while trying to make room for it (as today)
    assert chat.messages == [{"role": "system", "content": "be brief"}]


def test_reset_keeps_the_system_prompt_and_set_param(chat):
    _exchanges(chat, 2)
    chat.kv = [1, 2, 3]
    chat.reset()
    assert chat.messages == [{"role": "system", "content": "be brief"}] and chat.kv == []
    chat.set_system(None)
    assert chat.system is None and chat.messages == []
    chat.set_param("max_tokens", "7")
    chat.set_param("top-k", "3")
    assert chat.stop.max_tokens == 7 and chat.sampling.top_k == 3
    with pytest.raises(BadInputError, match="not an int"):
        chat.set_param("max_tokens", "many")


def test_one_bos_when_the_template_writes_it_too(model):
    bos = model.lib.llama_vocab_bos(model.vocab)
    text = model.piece(bos, special=True).decode() + "hello"
    tokens = tokenize_rendered(model, text)
    assert tokens[0] == bos and tokens[1] != bos
    assert tokens == model.tokenize("hello", add_special=True, parse_special=True)


def test_common_prefix():
    assert _common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert _common_prefix([], [1]) == 0 and _common_prefix([1, 2], [1, 2]) == 2


def test_saved_conversations_are_checked(tmp_path, chat):
    _exchanges(chat, 1)
    path = tmp_path / "chat.json"
    chat.save(path)
    assert load_messages(path) == chat.messages
    doc = json.loads(path.read_text())
    for bad in ({**doc, "format": "other"}, {**doc, "messages": [{"role": "robot", "content": "x"}]},
                {**doc, "messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "late"}]}):
        path.write_text(json.dumps(bad))
        with pytest.raises(BadInputError):
            load_messages(path)
    path.write_text("{not json")
    with pytest.raises(BadInputError, match="not a JSON conversation"):
        load_messages(path)
