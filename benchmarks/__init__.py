"""Timing benchmarks: ggufkit against llama.cpp's own tools or plain file copies, measured in the same run."""
