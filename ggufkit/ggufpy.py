"""gguf-py's constants without the rest of gguf-py, for the commands that only read and write headers.

`from gguf.constants import Keys` runs gguf/__init__.py first, and that imports all of gguf-py: numpy,
PyYAML, its reader, writer and vocabulary code, 0.13 s of a 0.3 s `split`. gguf/constants.py itself
imports nothing of its package, so `install()` (run by `import ggufkit`) executes that file as the module
`gguf.constants` and registers it under that name: every `from gguf.constants import ...` finds it there
without touching the package, and when something does `import gguf`, the package's own
`from .constants import *` finds this same module, so there is one GGUFValueType and one Keys in the
process. The package's `constants` attribute, which Python sets only when it loads the submodule itself,
is set when the package is imported (`_GgufPackage`).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

from ggufkit.importhooks import spec_then

_NAME = "gguf.constants"


def install() -> None:
    if _NAME in sys.modules or "gguf" in sys.modules:
        return
    spec = importlib.util.find_spec("gguf")  # a top-level package: found, not run
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: the first import says so where it is needed
    location = f"{next(iter(spec.submodule_search_locations))}/constants.py"
    constants = importlib.util.spec_from_file_location(_NAME, location)
    if constants is None or constants.loader is None:
        return
    module = importlib.util.module_from_spec(constants)
    sys.modules[_NAME] = module
    try:
        constants.loader.exec_module(module)
    except BaseException:
        del sys.modules[_NAME]  # gguf-py changed its layout: let the package load as it always did
        return
    sys.meta_path.insert(0, _finder)


class _GgufPackage(importlib.abc.MetaPathFinder):
    """Finds nothing itself; hands back the `gguf` package's own spec, which sets the package's `constants`
    attribute once the package has run, then steps aside."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname != "gguf":
            return None
        sys.meta_path.remove(self)
        return spec_then(fullname, path, lambda package: setattr(package, "constants", sys.modules[_NAME]))


_finder = _GgufPackage()
