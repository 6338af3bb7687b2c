"""A module found as usual, with something run right after it has run: how loadorder.py puts llama.cpp's
early log capture back after llama-cpp-python's `_logger`, and ggufpy.py sets the gguf package's
`constants` attribute."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
from collections.abc import Callable
from types import ModuleType


def spec_then(fullname: str, path: object, then: Callable[[ModuleType], None]):
    """The spec the path finder gives `fullname`, its loader wrapped so that `then(module)` runs once the
    module has run; None where the path finder finds nothing."""
    spec = importlib.machinery.PathFinder.find_spec(fullname, path)  # type: ignore[arg-type]
    if spec is not None and spec.loader is not None:
        spec.loader = _After(spec.loader, then)
    return spec


class _After(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, then: Callable[[ModuleType], None]):
        self.inner, self.then = inner, then

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        self.then(module)

    def __getattr__(self, name: str):  # the rest of the loader's interface (resources, source) is the module's own
        return getattr(self.inner, name)
