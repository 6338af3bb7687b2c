"""Copy byte ranges between files in the kernel (copy_file_range), so data never passes through Python; write
whole buffers."""

from __future__ import annotations

import os
from collections.abc import Callable

CHUNK = 32 << 20


def copy_range(src_fd: int, dst_fd: int, offset: int, count: int,
               on_bytes: Callable[[int], None] | None = None) -> None:
    """Append `count` bytes of `src_fd` from `offset` at `dst_fd`'s current position."""
    done = 0
    fast = hasattr(os, "copy_file_range")
    while done < count:
        n = min(CHUNK, count - done)
        if fast:
            try:
                n = os.copy_file_range(src_fd, dst_fd, n, offset + done)
            except OSError:  # e.g. EXDEV or a file system without support: fall back to read/write
                fast = False
                continue
        else:
            data = os.pread(src_fd, n, offset + done)
            n = os.write(dst_fd, data)
        if n <= 0:
            raise OSError(f"input ended {count - done} bytes early")
        done += n
        if on_bytes is not None:
            on_bytes(n)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` at `fd`'s position (os.write may take less than it is given)."""
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]
