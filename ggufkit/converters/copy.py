"""Copy byte ranges between files in the kernel (copy_file_range), so data never passes through Python."""

from __future__ import annotations

import os

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
