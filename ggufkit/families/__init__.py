"""Model families of the GGML era: one module each, registered here in the order detection tries them."""

from __future__ import annotations

from ggufkit.families import falcon, gpt2, gptj, gptneox, llama, mpt, replit, rwkv, starcoder
from ggufkit.families.base import Family

FAMILIES: dict[str, Family] = {f.name: f for f in (
    llama.FAMILY, gpt2.FAMILY, starcoder.FAMILY, gptneox.FAMILY, mpt.FAMILY, falcon.FAMILY,
    gptj.FAMILY, replit.FAMILY, rwkv.FAMILY,
)}


def for_container(container: str) -> list[Family]:
    return [f for f in FAMILIES.values() if container in f.containers]
