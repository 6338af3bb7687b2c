"""Importance matrices: computed as llama-imatrix computes them (compute.py, collect.py, graph.py), kept as
its sums and counts (matrix.py), read and written in its GGUF and .dat layouts (files.py), summarised as its
--show-statistics (stats.py), and cached per model, text and settings (cache.py: `matrix_for`)."""

from ggufkit.imatrix.cache import matrix_for

__all__ = ["matrix_for"]
