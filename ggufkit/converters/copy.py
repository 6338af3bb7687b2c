"""Copy byte ranges between files in the kernel (copy_file_range), so data never passes through Python; write
whole buffers."""

from __future__ import annotations

import os
from collections.abc import Callable

CHUNK = 32 << 20


def copy_at(src_fd: int, dst_fd: int, src_offset: int, dst_offset: int, count: int) -> int:
    """Copy `count` bytes from `src_offset` of `src_fd` to `dst_offset` of `dst_fd`, neither file's position
    used (so threads may share them); returns `count`."""
    done = 0
    fast = hasattr(os, "copy_file_range")
    while done < count:
        n = min(CHUNK, count - done)
        if fast:
            try:
                n = os.copy_file_range(src_fd, dst_fd, n, src_offset + done, dst_offset + done)
            except OSError:  # e.g. EXDEV or a file system without support: fall back to read/write
                fast = False
                continue
        else:
            data = os.pread(src_fd, n, src_offset + done)
            n = os.pwrite(dst_fd, data, dst_offset + done) if data else 0
        if n <= 0:
            raise OSError(f"input ended {count - done} bytes early")
        done += n
    return count


def copy_range(src_fd: int, dst_fd: int, offset: int, count: int,
               on_bytes: Callable[[int], None] | None = None) -> None:
    """Append `count` bytes of `src_fd` from `offset` at `dst_fd`'s current position (and move it past them),
    a CHUNK at a time so `on_bytes` hears of the progress."""
    at = os.lseek(dst_fd, 0, os.SEEK_CUR)
    for done in range(0, count, CHUNK):
        n = copy_at(src_fd, dst_fd, offset + done, at + done, min(CHUNK, count - done))
        if on_bytes is not None:
            on_bytes(n)
    os.lseek(dst_fd, at + count, os.SEEK_SET)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` at `fd`'s position (os.write may take less than it is given)."""
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]
