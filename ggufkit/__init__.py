"""ggufkit: a command-line toolkit for llama.cpp model files."""

__version__ = "0.1.0"
