"""Byte sizes, counts and durations for people, one way everywhere: `1.16 MiB`, `1.97M` (`1.97 M` in bench's
llama-bench-style table), `30d`."""

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
# llama-gguf-split's --split-max-size counts M and G in powers of 1000 (as Hugging Face's 50 GB file cap does)
_DECIMAL_UNITS = {**_SIZE_UNITS, **{u: 1000 ** p for p, us in enumerate((("k", "kb"), ("m", "mb"), ("g", "gb"),
                                                                         ("t", "tb")), 1) for u in us}}


def parse_bytes(text: str, decimal: bool = False) -> int | None:
    """`10GiB`, `500M`, `2.5 G`, `1048576` -> bytes (binary units: K, M, G mean KiB, MiB, GiB; with `decimal`,
    K, M, G, T and KB ... TB are powers of 1000 and only KiB ... TiB binary); None if not a size."""
    parsed = _number_and_unit(text)
    units = _DECIMAL_UNITS if decimal else _SIZE_UNITS
    if parsed is None or parsed[1] not in units:
        return None
    return int(parsed[0] * units[parsed[1]])


_DURATION_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float | None:
    """`30d`, `12h`, `90m`, `2w`, `45s`, `1.5d` -> seconds (a unit is required; `0` alone means none); None if
    not a duration."""
    parsed = _number_and_unit(text)
    if parsed is None or (parsed[1] not in _DURATION_UNITS and parsed != (0, "")):
        return None
    return parsed[0] * _DURATION_UNITS.get(parsed[1], 1)


def _number_and_unit(text: str) -> tuple[float, str] | None:
    """`2.5 GiB` -> (2.5, "gib"): a number that is not negative, and the letters after it, lower-cased."""
    t = text.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz ")
    try:
        value = float(num)
    except ValueError:
        return None
    return (value, t[len(num):].strip()) if value >= 0 else None


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 message`, `2 messages`, `0 messages` (`nouns` where adding an s is wrong)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"
