"""Outputs appear whole or not at all.

On Linux the output is first an unnamed file (O_TMPFILE) in the target directory, reachable by any
writer, a child process included, as /proc/PID/fd/N; it gets its name only once complete. Killed
even with SIGKILL, the process leaves nothing behind. Elsewhere a hidden `.NAME.*.part` file is
used and removed on any error; one left by a killed process is removed by the next run that
writes the same output.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ggufkit.errors import BadInputError, GgufkitError


def read_text(path: Path, what: str, limit: int = 1 << 20) -> str:
    """A small UTF-8 file (grammar, template, config) given by the user: read at most `limit` bytes."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise BadInputError(f"cannot read {what}: {e.strerror}", path) from None
    if len(data) > limit:
        raise BadInputError(f"{what} file is larger than {limit >> 20} MiB", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{what} file is not UTF-8 text", path) from None


def check_output(out: Path, inputs: list[Path], force: bool) -> None:
    """Refuse to clobber an input, or an existing output without `force`."""
    for inp in inputs:
        if out.exists() and inp.exists() and os.path.samefile(out, inp):
            raise BadInputError("output would overwrite the input", out)
    if out.is_dir():
        raise BadInputError("output is a directory", out)
    if out.exists() and not force:
        raise BadInputError("output exists (use --force to overwrite)", out)
    if not out.parent.is_dir():
        raise BadInputError("output directory does not exist", out.parent)
    check_writable(out.parent, out)


def check_writable(folder: Path, name: Path | None = None) -> None:
    """Raise `cannot write: …` (exit 1) now, before any work, if no file can be made in `folder`
    (a read-only file system, no permission): tried with a file that vanishes at once."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise GgufkitError(f"cannot write: {e.strerror or e}", name or folder) from None


def make_dir(folder: Path) -> Path:
    """`folder` and its parents, made if missing (an --out-dir); `cannot write: …` if that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BadInputError("not a directory", folder) from None
    except OSError as e:
        raise GgufkitError(f"cannot write: {e.strerror or e}", folder) from None
    check_writable(folder)
    return folder


def _mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_linkable: dict[int, bool] = {}


def _open_unnamed(folder: Path) -> int | None:
    """An O_TMPFILE descriptor in `folder`, if this file system can later give it a name (overlayfs can't)."""
    try:
        dev = folder.stat().st_dev
        if dev not in _linkable:
            probe = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
            name = folder / f".ggufkit-probe-{secrets.token_hex(4)}"
            try:
                os.link(f"/proc/self/fd/{probe}", name, follow_symlinks=True)
                name.unlink()
                _linkable[dev] = True
            except OSError:
                _linkable[dev] = False
            finally:
                os.close(probe)
        return os.open(folder, os.O_TMPFILE | os.O_RDWR, _mode()) if _linkable[dev] else None
    except (AttributeError, OSError):
        return None


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """Yield a path to write the output to; it becomes `out` only if the block succeeds."""
    fd = _open_unnamed(out.parent)
    try:
        if fd is not None:
            yield from _unnamed(fd, out)
        else:
            yield from _named(out)
    except OSError as e:
        raise GgufkitError(f"cannot write: {e.strerror or e}", out) from e


def _unnamed(fd: int, out: Path) -> Iterator[Path]:
    try:
        yield Path(f"/proc/{os.getpid()}/fd/{fd}")
        os.fsync(fd)
        staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.part"
        os.link(f"/proc/self/fd/{fd}", staging, follow_symlinks=True)
        os.replace(staging, out)
    finally:
        os.close(fd)


def _named(out: Path) -> Iterator[Path]:
    _sweep_stale(out)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".part", dir=out.parent)
    os.fchmod(fd, _mode())  # mkstemp makes 0600; the output should look like any other file
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _sweep_stale(out: Path) -> None:
    """Remove `.NAME.PID.*.part` files whose writing process no longer exists (it was killed)."""
    for part in out.parent.glob(f".{glob.escape(out.name)}.*.part"):
        pid = part.name[len(out.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
