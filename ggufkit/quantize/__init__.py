"""Quantization through llama.cpp's own quantizer (llama_model_quantize), run in a child process."""

CHILD = "ggufkit.quantize.child"  # the child's module, started as `python -m`
