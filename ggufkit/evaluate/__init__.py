"""`ggufkit eval`: what a quantization costs, as llama.cpp's llama-perplexity measures it, for many models in one pass."""
