"""Fuzz harness: mutate valid sample models and run ggufkit's readers and every command on them.

    python -m tests.fuzz.run --iterations 10000        (make fuzz N=10000)

Every mutant goes through the validation each command performs before llama.cpp sees a file
(in process: only GgufkitError may come out, quickly). Mutants that pass validation and changed
the header are the dangerous ones: a long-lived llama.cpp worker loads each of them. Whatever the
worker could not load (llama.cpp refused it, or crashed: a new kind of refusal, judged once per
message) is then judged by running every command for real (CLI in a child process): each must end
with exit 0, or with one `ggufkit: error:` line and no traceback — never a signal, a hang, more
than 1 GiB of memory, or an output file left behind. Every `--cli-every`-th mutant is judged too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ggufkit.errors import GgufkitError
from tests.measure import run_measured
from tests.fuzz.mutate import fields_of, header_end, mutate

SEEDS = (("f16", "gguf"), ("q4_k_m", "gguf"), ("q4_0", "ggjt3"), ("f16", "ggjt3"), ("q4_0", "ggjt1"),
         ("q4_2", "ggjt1"), ("q4_1", "ggml"), ("q8_0", "ggjt2"),
         # the GGML-era families' readers: the ggml examples' container per family, GGCC, rwkv.cpp
         ("q5_0", "family:gpt2"), ("q4_0", "family:starcoder"), ("q4_1", "family:gptneox"), ("f16", "family:mpt"),
         ("q8_0", "family:falcon40"), ("f16", "family:gptj"), ("q5_1", "family:replit"), ("q4_0", "family:rwkv"),
         # a split model: the first shard mutated (its sibling intact), and the second (the first intact)
         ("f16", "shard:1"), ("q4_k_m", "shard:2"),
         # importance matrices of the f16 seed (ggufkit.imatrix.files): llama-imatrix's GGUF and .dat layouts
         ("f16", "imatrix:gguf"), ("f16", "imatrix:dat"))
CLI_TIMEOUT_S = 60
IN_PROCESS_LIMIT_S = 5
RSS_LIMIT = 1 << 30
VALIDATION_EXTRA_BYTES = 1 << 30


@dataclass
class Seed:
    data: bytes
    fields: list
    legacy: bool
    mutant: Path  # where each mutant of it is written
    given: Path | None = None  # the file the commands are given (a split model's first shard), if not the mutant
    imatrix_of: Path | None = None  # an importance matrix: the model it belongs to

    def __post_init__(self) -> None:
        self.given = self.given or self.mutant


def _shard_seed(work: Path, type_name: str, which: int) -> Seed:
    """Shard `which` (1 or 2) of the sample split in two; mutants replace it beside its intact sibling."""
    from ggufkit.samples.make import make_sample
    from ggufkit.surgery.split import split

    folder = work / f"shards-{which}"
    folder.mkdir(exist_ok=True)
    names = [folder / f"m-0000{i}-of-00002.gguf" for i in (1, 2)]
    if not names[1].exists():
        src = make_sample(work / f"seed-{type_name}.split.gguf", type_name, "gguf", "tiny", force=True)
        split(src, folder / "m", max_tensors=11, force=True)
    seed = folder / f"seed-{which}.gguf"
    if not seed.exists():
        seed.write_bytes(names[which - 1].read_bytes())
    return Seed(seed.read_bytes(), fields_of(seed), False, names[which - 1], names[0])


@dataclass
class Report:
    mutants: int = 0
    rejected: int = 0
    accepted: int = 0
    loaded: int = 0
    llama_refused: int = 0
    llama_crashed: int = 0
    cli_runs: int = 0
    failures: list[str] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)  # llama.cpp's reason -> how many mutants

    def line(self) -> str:
        return (f"fuzz: {self.mutants} mutants, {self.rejected} rejected by validation, {self.accepted} accepted "
                f"(llama.cpp loaded {self.loaded}, refused {self.llama_refused}, crashed on {self.llama_crashed}), "
                f"{self.cli_runs} CLI runs, {len(self.failures)} failures")


class Worker:
    """tests/fuzz/llama_worker.py, restarted whenever a file kills it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def check(self, path: Path) -> str:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz.llama_worker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                         env={**os.environ, "GGML_NO_BACKTRACE": "1"})
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(f"{path}\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
        except BrokenPipeError:
            answer = ""
        if not answer:
            self.proc.wait()
            return "crashed"
        return answer

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait()


def commands(path: Path, out: Path, legacy: bool, model: Path | None = None) -> dict[str, list[str]]:
    """What runs on a mutant; with `model`, the mutant is an importance matrix of it."""
    if model is not None:
        return {"inspect": ["inspect", str(path)],
                "quantize": ["quantize", str(model), "-t", "q4_0", "--imatrix", str(path), "-o", str(out / "q.gguf")],
                "imatrix": ["imatrix", "--in-file", str(path), "-o", str(out / "i.gguf")]}
    cmds = {
        "inspect": ["inspect", str(path)],
        "split": ["split", str(path), "--max-tensors", "8", "-o", str(out / "s")],
        "edit": ["edit", str(path), "-o", str(out / "e.gguf"), "--set", "general.name=fuzz"],
        "diff": ["diff", str(path), str(path), "--values"],
        "quantize": ["quantize", str(path), "-t", "q4_0", "-o", str(out / "q.gguf")],
        "run": ["run", str(path), "-p", "hello", "-n", "4", "--ctx", "64"],
        "bench": ["bench", str(path), "-p", "8", "-n", "4", "-r", "1", "--format", "json"],
    }
    if legacy:
        cmds["convert"] = ["convert", str(path), "-o", str(out / "c.gguf")]
    return cmds


def validate(path: Path, legacy: bool, scratch: Path, imatrix: bool = False) -> Path | None:
    """What the commands check before llama.cpp: the file llama.cpp would get, or None if rejected."""
    from ggufkit.formats.summary import summarize

    try:
        if imatrix:
            from ggufkit.imatrix.files import read_matrix

            read_matrix(path)
            return path
        summarize(path, ctx=512)
        if legacy:
            from ggufkit.converters.cache import convert_checked

            out = scratch / "validate.gguf"
            convert_checked(path, out)
            return out
        from ggufkit.runtime.prepare import prepare_model

        prepare_model(path)
        return path
    except GgufkitError:
        return None


@contextlib.contextmanager
def address_space_cap(extra: int) -> Iterator[None]:
    """Let this process grow by at most `extra` bytes of address space meanwhile: a header that makes
    validation allocate without bound then fails here with MemoryError instead of the kernel's OOM
    killer ending the whole run (as a 2^32-layer GGJT file once did, at 24 GB)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_cli(args: list[str], out: Path) -> str | None:
    """None if the command behaved, else what went wrong."""
    r = run_measured([sys.executable, "-m", "ggufkit", *args], CLI_TIMEOUT_S)
    if r.timed_out:
        return f"hung (> {CLI_TIMEOUT_S} s)"
    err = r.err
    if r.returncode < 0:
        return f"killed by signal {-r.returncode}: {err.strip()[-300:]}"
    if "Traceback" in err:
        return f"traceback: {err.strip()[-500:]}"
    if r.returncode > 0:
        errors = [ln for ln in err.splitlines() if ln.startswith("ggufkit: error:")]
        # bench reports a configuration llama.cpp refused as an error row and a closing notice
        row_failed = args[0] == "bench" and "configuration(s) failed" in err
        if len(errors) != 1 and not row_failed:
            return f"exit {r.returncode} without one error line: {err.strip()[-300:]}"
        if any(out.iterdir()):
            return f"failed but left {[p.name for p in out.iterdir()]}"
    if r.peak_rss > RSS_LIMIT:
        return f"peak RSS {r.peak_rss >> 20} MiB"
    return None


def fuzz(iterations: int, seed: int = 0, cli_every: int = 50, cli_limit: int | None = None,
         workdir: Path | None = None, log=print) -> Report:
    from ggufkit.samples.families import write_family_sample
    from ggufkit.samples.make import make_sample

    rng = random.Random(seed)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="ggufkit-fuzz-")) if own else workdir
    crashes = work / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    seeds = []
    for type_name, fmt in SEEDS:
        path = work / f"seed-{type_name}.{fmt.replace(':', '-')}"  # every reader, container, block era, family
        if fmt.startswith("shard:"):
            seeds.append(_shard_seed(work, type_name, int(fmt.split(":")[1])))
            continue
        if fmt.startswith("imatrix:"):
            seeds.append(_imatrix_seed(work, work / f"seed-{type_name}.gguf", path, fmt.split(":")[1]))
            continue
        if not path.exists():
            if fmt.startswith("family:"):
                write_family_sample(path, fmt.split(":")[1], type_name, force=True)
            else:
                make_sample(path, type_name, fmt, "tiny", force=True)
        seeds.append(Seed(path.read_bytes(), fields_of(path), fmt != "gguf", work / "mutant.bin"))
    report = Report()
    out = work / "out"
    worker = Worker()
    try:
        for i in range(iterations):
            chosen = rng.choice(seeds)
            data, fields, legacy, mutant = chosen.data, chosen.fields, chosen.legacy, chosen.given
            mutated, how = mutate(data, fields, rng)
            chosen.mutant.write_bytes(mutated)
            report.mutants += 1
            started = time.perf_counter()
            try:
                with address_space_cap(VALIDATION_EXTRA_BYTES):
                    for_llama = validate(mutant, legacy, work, chosen.imatrix_of is not None)
                accepted = for_llama is not None
            except Exception:  # MemoryError included: validation must stay bounded whatever the header claims
                report.failures.append(_save(crashes, i, mutated, how, "in-process: " + traceback.format_exc(limit=3)))
                continue
            if time.perf_counter() - started > IN_PROCESS_LIMIT_S:
                report.failures.append(_save(crashes, i, mutated, how, "validation too slow"))
            report.accepted += accepted
            report.rejected += not accepted
            end = header_end(fields, len(data))
            data_only = len(mutated) == len(data) and mutated[:end] == data[:end]
            judge = i % cli_every == 0
            # tensor-data edits are valid files: llama.cpp computes on any weights (a matrix: the commands judge)
            if accepted and not data_only and chosen.imatrix_of is None:
                verdict = worker.check(for_llama)
                if verdict == "ok":
                    report.loaded += 1
                elif verdict == "crashed":
                    report.llama_crashed += 1
                    judge = True
                else:
                    report.llama_refused += 1
                    reason = re.sub(r"\d+", "N", verdict)  # one kind of refusal, whatever the numbers
                    judge = judge or reason not in report.refusals
                    report.refusals[reason] = report.refusals.get(reason, 0) + 1
            if not judge or (cli_limit is not None and report.cli_runs >= cli_limit):
                continue
            for name, args in commands(mutant, out, legacy, chosen.imatrix_of).items():
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                problem = run_cli(args, out)
                report.cli_runs += 1
                if problem:
                    report.failures.append(_save(crashes, i, mutated, how, f"{name}: {problem}"))
            if (i + 1) % 500 == 0:
                log(report.line())
    finally:
        worker.close()
        if own and not report.failures:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _imatrix_seed(work: Path, model: Path, path: Path, layout: str) -> Seed:
    """A synthetic importance matrix of `model` (made before it, as the first seed) in one layout."""
    from ggufkit.imatrix.files import read_matrix, write_dat
    from ggufkit.samples.imatrix import write_synthetic_imatrix

    if not path.exists():
        gguf = write_synthetic_imatrix(model, path.with_suffix(".tmp.gguf"))
        if layout == "dat":
            write_dat(path, read_matrix(gguf), "synthetic")
            gguf.unlink()
        else:
            gguf.rename(path)
    return Seed(path.read_bytes(), fields_of(path, imatrix=True), False, work / f"mutant.{layout}", imatrix_of=model)


def _save(folder: Path, i: int, data: bytes, how: str, problem: str) -> str:
    path = folder / f"mutant-{i}.bin"
    path.write_bytes(data)
    return f"{path} ({how}): {problem}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")))
    ap.add_argument("--cli-every", type=int, default=50, help="also run the CLI on every Nth rejected mutant")
    args = ap.parse_args()
    report = fuzz(args.iterations, args.seed, args.cli_every)
    for reason, n in sorted(report.refusals.items(), key=lambda kv: -kv[1])[:15]:
        print(f"llama.cpp refused {n:5d}x: {reason}")
    for f in report.failures:
        print("FAIL", f)
    print(report.line())
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
