"""Outputs appear whole or not at all: written to a temporary file beside the target, then renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ggufkit.errors import BadInputError, GgufkitError


def check_output(out: Path, inputs: list[Path], force: bool) -> None:
    """Refuse to clobber an input, or an existing output without `force`."""
    for inp in inputs:
        if out.exists() and inp.exists() and os.path.samefile(out, inp):
            raise BadInputError("output would overwrite the input", out)
    if out.exists() and not force:
        raise BadInputError("output exists (use --force to overwrite)", out)
    if not out.parent.is_dir():
        raise BadInputError("output directory does not exist", out.parent)


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """Yield a temporary path in `out`'s directory; rename it to `out` only if the block succeeds."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the output should look like any other file
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GgufkitError(f"cannot write: {e.strerror or e}", out) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
