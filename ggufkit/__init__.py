"""ggufkit: a command-line toolkit for llama.cpp model files."""

from ggufkit import ggufpy, loadorder

__version__ = "0.1.0"

loadorder.install()  # llama.cpp's libraries before numpy, for every entry point (loadorder.py says why)
ggufpy.install()  # gguf-py's constants without numpy and the rest of gguf-py, until they are needed (ggufpy.py)
