"""Byte sizes and counts for people, one way everywhere: `1.16 MiB`, `1.97M` (`1.97 M` in bench's
llama-bench-style table)."""

from __future__ import annotations

MIB = 1 << 20


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError


def human_count(n: int, sep: str = "") -> str:
    """`sep` goes between the number and its unit (llama-bench writes "1.97 M")."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{sep}{unit}"
    return str(n)
