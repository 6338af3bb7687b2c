"""ggufkit: a command-line toolkit for llama.cpp model files."""

from ggufkit import loadorder

__version__ = "0.1.0"

loadorder.install()  # llama.cpp's libraries before numpy, for every entry point (loadorder.py says why)
