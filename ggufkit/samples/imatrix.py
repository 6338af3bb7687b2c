"""A synthetic importance matrix for a model (tests and benchmarks of `quantize --imatrix`, where running a
text through the model would only cost time): random mean squares in [0.1, 3) for every 2-D weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_synthetic_imatrix(model: Path, path: Path, chunks: int = 3, chunk_size: int = 512, seed: int = 1,
                            dataset: str = "synthetic") -> Path:
    from ggufkit.formats.gguf_file import read_gguf
    from ggufkit.imatrix.files import write_gguf
    from ggufkit.imatrix.matrix import Entry, Matrix

    rng = np.random.default_rng(seed)
    count = chunks * chunk_size
    m = Matrix(chunk_size, datasets=[dataset])
    for t in read_gguf(model).tensors:
        if len(t.shape) == 2:
            m.entries[t.name] = Entry((rng.uniform(0.1, 3.0, t.shape[0]) * count).astype(np.float32),
                                      np.array([count], np.int64))
    write_gguf(path, m)
    return path
