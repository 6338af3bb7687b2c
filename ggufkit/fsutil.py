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


def check_split_outputs(out: Path, force: bool) -> None:
    """For a split model's shards, OUT-0000i-of-0000n.gguf, named only once written: their folder exists and
    takes files, and no shard of that name is there yet unless `force`."""
    if not out.parent.is_dir():
        raise BadInputError("output directory does not exist", out.parent)
    prefix = glob.escape(out.name.removesuffix(".gguf"))
    existing = sorted(out.parent.glob(f"{prefix}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].gguf"))
    if existing and not force:
        raise BadInputError("output exists (use --force to overwrite)", existing[0])
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
    with atomic_outputs([out]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_outputs(outs: list[Path]) -> Iterator[list[Path]]:
    """Several outputs (a split model's shards) that appear all or none: each is written to its own
    staged file; only once every one is complete are they renamed into place, and if a rename fails the
    ones already placed are removed again."""
    staged: list[_Staged] = []
    current = outs[0] if outs else None  # the output an error is about
    try:
        for out in outs:
            current = out
            staged.append(_Staged(out))
        yield [s.tmp for s in staged]
        for s in staged:
            current = s.out
            s.seal()
        placed: list[Path] = []
        try:
            for s in staged:
                current = s.out
                assert s.part is not None
                os.replace(s.part, s.out)
                placed.append(s.out)
        except OSError:
            for p in placed:
                p.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise GgufkitError(f"cannot write: {e.strerror or e}", current) from e
    finally:
        for s in staged:
            s.close()


@contextlib.contextmanager
def scratch_file(folder: Path) -> Iterator[Path]:
    """A file in `folder` that never gets a name where O_TMPFILE works (a hidden `.part` elsewhere), gone
    when the block ends: the single file a split output is cut from."""
    s = _Staged(folder / ".ggufkit-scratch")
    try:
        yield s.tmp
    finally:
        s.close()


class _Staged:
    """One output being written: an unnamed file in its folder (O_TMPFILE), or a hidden `.NAME.PID.*.part`."""

    def __init__(self, out: Path):
        self.out = out
        self.part: Path | None = None  # the hidden name it has before its rename into place
        self.fd = _open_unnamed(out.parent)
        if self.fd is not None:
            self.tmp = Path(f"/proc/{os.getpid()}/fd/{self.fd}")
            return
        _sweep_stale(out)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".part", dir=out.parent)
        os.fchmod(fd, _mode())  # mkstemp makes 0600; the output should look like any other file
        os.close(fd)
        self.tmp = self.part = Path(name)

    def seal(self) -> None:
        """On disk (fsync), under a hidden name beside the output: one rename from done."""
        if self.fd is not None:
            os.fsync(self.fd)
            self.part = self.out.parent / f".{self.out.name}.{secrets.token_hex(4)}.part"
            os.link(f"/proc/self/fd/{self.fd}", self.part, follow_symlinks=True)
        else:
            assert self.part is not None
            with open(self.part, "rb+") as f:
                os.fsync(f.fileno())

    def close(self) -> None:
        """Release it; whatever was not renamed into place is removed."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.part is not None:
            self.part.unlink(missing_ok=True)


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
