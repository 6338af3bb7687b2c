"""Named prompt formats (`--template NAME`), as Jinja chat templates over `messages`.

They leave the leading BOS to the tokenizer (which adds it itself), so every format starts the same way.
A system message is the first message with role "system"; formats without a system slot put it in
front of the first user message, as their reference implementations do.
"""

from __future__ import annotations

# Shared prelude: `system` is the system text or '', `turns` the other messages. No whitespace control
# ("{%-") anywhere: the newlines written here are the format's own.
_SPLIT = (
    "{% if messages and messages[0].role == 'system' %}"
    "{% set system = messages[0].content %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
)

BUILTIN_TEMPLATES: dict[str, str] = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llama2": _SPLIT + (
        "{% for m in turns %}"
        "{% if m.role == 'user' %}"
        "{% if not loop.first %}<s>{% endif %}[INST] "
        "{% if loop.first and system %}<<SYS>>\n{{ system }}\n<</SYS>>\n\n{% endif %}"
        "{{ m.content }} [/INST]"
        "{% else %} {{ m.content }} </s>{% endif %}"
        "{% endfor %}"
    ),
    "llama3": (
        "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
    ),
    "mistral": _SPLIT + (
        "{% for m in turns %}"
        "{% if m.role == 'user' %}[INST] {% if loop.first and system %}{{ system }}\n\n{% endif %}"
        "{{ m.content }} [/INST]"
        "{% else %}{{ m.content }}</s>{% endif %}"
        "{% endfor %}"
    ),
    "alpaca": _SPLIT + (
        "{% if system %}{{ system }}\n\n{% endif %}"
        "{% for m in turns %}"
        "{% if m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n"
        "{% else %}### Response:\n{{ m.content }}\n\n{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}### Response:\n{% endif %}"
    ),
    "vicuna": _SPLIT + (
        "{% if system %}{{ system }}\n\n{% endif %}"
        "{% for m in turns %}"
        "{% if m.role == 'user' %}USER: {{ m.content }}\n"
        "{% else %}ASSISTANT: {{ m.content }}</s>\n{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    ),
    "zephyr": (
        "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    "gemma": _SPLIT + (
        "{% for m in turns %}"
        "<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n"
        "{% if loop.first and system %}{{ system }}\n\n{% endif %}"
        "{{ m.content }}<end_of_turn>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
    "phi3": (
        "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    # The text as given: the prompt alone in one-shot mode, the turns one per line in a chat.
    "raw": "{% for m in messages %}{{ '' if loop.first else '\\n' }}{{ m.content }}{% endfor %}",
}

FALLBACK_TEMPLATE = "chatml"  # for chats on a model without a usable template of its own, as llama.cpp does

# A model without a template of its own still tells its chat format: the format's marker tokens in its
# vocabulary (a model learns the markers it was trained with as tokens of their own), else its
# architecture (Gemma's family has one format; LLaMA's SentencePiece models are LLaMA 2's era).
MARKER_TEMPLATES = (("<start_of_turn>", "gemma"), ("<|start_header_id|>", "llama3"), ("<|im_start|>", "chatml"),
                    ("<|end|>", "phi3"))
ARCH_TEMPLATES = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma", "phi3": "phi3"}


def default_template(arch: str | None, tokenizer: str | None, tokens: list[str] | None) -> tuple[str, str]:
    """The built-in format for a model without a usable template, and why (for the notice that names it)."""
    vocab = set(tokens or ())
    for marker, name in MARKER_TEMPLATES:
        if marker in vocab:
            return name, f"its vocabulary has {marker}"
    if arch in ARCH_TEMPLATES:
        return ARCH_TEMPLATES[arch], f"the {arch} architecture's format"
    if arch == "llama" and tokenizer == "llama":
        return "llama2", "a LLaMA SentencePiece vocabulary: LLaMA 2's format"
    return FALLBACK_TEMPLATE, "the common default"
