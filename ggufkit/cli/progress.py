"""tqdm progress bars on stderr, only for people: none in pipes, in CI logs or with --quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def byte_bar(total: int, desc: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False) as bar:
        yield bar.update


@contextmanager
def count_bar(total: int, desc: str, unit: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A bar over `total` steps; the callback takes (done, total). Unit "B": bytes, shown as KiB, MiB, ..."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    scale = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
    with tqdm(total=total or None, desc=desc, unit=unit, leave=False, **scale) as bar:
        def step(done: int, of: int) -> None:
            bar.total = of  # known only once the work has measured itself (e.g. chunks of a tokenized text)
            bar.update(done - bar.n)

        yield step


@contextmanager
def chunk_bar(desc: str, quiet: bool) -> Iterator[Callable[[Any], None] | None]:
    """Chunks of a text done, with the running perplexity and speed (imatrix's compute.Progress)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=None, desc=desc, unit="chunk", leave=False) as bar:
        def step(p: Any) -> None:
            bar.total = p.total
            bar.set_postfix_str(f"PPL {p.ppl:.4f}, {p.tokens_per_second:.0f} tokens/s", refresh=False)
            bar.update(p.chunks - bar.n)

        yield step
