"""Quantization through llama.cpp's own quantizer (llama_model_quantize), run in a child process."""
