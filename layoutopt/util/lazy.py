"""Lazy re-exports for the stage packages (PEP 562), so importing one costs nothing.

A stage's ``__init__.py`` names its public API and the module that defines each name; the
module is imported the first time the name is read (``layoutopt.model.LayoutSpace``,
``from layoutopt.model import LayoutSpace``), not when the package is. So a command that
reads the store and the layout space (``campaign status``, ``design``) does not import JAX
only because a sibling module of the one it needs does. The package root does the same for
``lo.*`` (``layoutopt/__init__.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    Args:
        package: the package's ``__name__``.
        exports: public name -> dotted name of the module that defines it.

    Returns:
        ``(__getattr__, __dir__)`` to bind at the package's module level. ``__getattr__``
        imports the defining module, caches the name on the package and returns it; a name
        that is a submodule (``layoutopt.model.space``) imports that submodule, as the
        package's eager imports used to make it reachable; any other name raises
        ``AttributeError``.

    Examples:
        In ``layoutopt/model/__init__.py``::

            _EXPORTS = {"LayoutSpace": "layoutopt.model.space"}
            __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
            setattr(sys.modules[package], name, value)
            return value
        if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}"):
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
