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


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def parse_bytes(text: str) -> int | None:
    """`10GiB`, `500M`, `2.5 G`, `1048576` -> bytes (binary units: K, M, G mean KiB, MiB, GiB); None if not a size."""
    t = text.strip().lower()
    num = t.rstrip("kmgtib ")
    unit = t[len(num):].strip()
    try:
        value = float(num)
    except ValueError:
        return None
    if unit not in _SIZE_UNITS or value < 0:
        return None
    return int(value * _SIZE_UNITS[unit])


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 message`, `2 messages`, `0 messages` (`nouns` where adding an s is wrong)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"
