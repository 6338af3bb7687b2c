"""A stand-in for a chart (tests/test_load_order.py): records whether llama.cpp is in the drawing process.
A module of its own, importing nothing, so the drawing process imports only what drawing needs."""


def mapped_llama(_data, out) -> None:
    out.write_text(str(any("libllama" in m or "libggml" in m for m in open("/proc/self/maps").read().split())))
