"""Convert's data section is written a slice at a time by several workers, each at its own offset: however
the work is cut and shared, the file is the same (the other tests check that file against the input)."""

from __future__ import annotations

import pytest

from ggufkit.converters import datapath
from ggufkit.converters.engine import convert_legacy


@pytest.mark.parametrize("case", ["q4_0 in 2 parts", "f16 in 2 parts", "gptneox (rows permuted)"])
def test_the_data_section_does_not_depend_on_slices_or_workers(samples, tmp_path, monkeypatch, case):
    from ggufkit.converters.metadata import ConvertOptions
    from ggufkit.samples.families import write_family_sample

    if case == "gptneox (rows permuted)":
        src = write_family_sample(tmp_path / "neox.bin", "gptneox", "q8_0")
    else:  # repacked blocks (old nibble order, f32 scales) / kernel copies: both ways a part holds its slice
        src = samples.era("GGJT", 1, case.split()[0], parts=2)
    outs = []
    for workers, slice_bytes, piece in ((1, 8 << 20, 64 << 20), (3, 1000, 4096)):
        monkeypatch.setenv("GGUFKIT_WORKERS", str(workers))
        monkeypatch.setattr(datapath, "SLICE_BYTES", slice_bytes)
        monkeypatch.setattr(datapath, "COPY_PIECE", piece)
        out = tmp_path / f"{workers}.gguf"
        convert_legacy(src, out, ConvertOptions(eps=1e-5))
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_pwrite_all_puts_every_byte_where_asked(tmp_path):
    """Big writable buffers go through a pipe (vmsplice + splice), small or read-only ones through pwrite:
    either way every byte lands at its offset, and a pipe left half full would show in the next write."""
    import os

    import numpy as np

    from ggufkit.workers import pwrite_all

    a = np.random.default_rng(0).integers(0, 256, (3 << 20) + 5, dtype=np.uint8)
    b = np.random.default_rng(1).integers(0, 256, 1 << 20, dtype=np.uint8)
    path = tmp_path / "f.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        pwrite_all(fd, a.data, 1001)  # through the pipe, a capacity and a bit
        pwrite_all(fd, b.tobytes(), 3)  # read-only: pwrite
        pwrite_all(fd, b[:70000].data, (3 << 20) + 2000)  # the pipe again, after a pwrite
    finally:
        os.close(fd)
    want = bytearray((3 << 20) + 72000)  # the gap between the first and the last write stays zeros
    want[1001:1001 + a.size] = a.tobytes()
    want[3:3 + (1 << 20)] = b.tobytes()
    want[(3 << 20) + 2000:(3 << 20) + 72000] = b[:70000].tobytes()
    assert path.read_bytes() == bytes(want)
