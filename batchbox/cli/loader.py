"""Loading a user's workload from a Python file or a ``module:attribute`` reference."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from batchbox.core.errors import ConfigurationError
from batchbox.core.workload import Workload

__all__ = ["load_workload"]


def load_workload(reference: str) -> Workload:
    """Return the workload named by ``reference``.

    ``reference`` is a ``.py`` file or ``package.module``, optionally followed by ``:attribute``. Without an
    attribute, the module's ``WORKLOAD`` is used, else its only :class:`Workload` subclass is instantiated.

    Raises:
        ConfigurationError: the file or module cannot be loaded, or names no single workload.
    """
    target, _, attribute = reference.partition(":")
    if len(target) == 1 and attribute:  # a Windows drive letter, not an attribute
        target, attribute = reference, ""
    module = _load_module(target)
    if attribute:
        try:
            found = getattr(module, attribute)
        except AttributeError as exc:
            raise ConfigurationError("workload", f"{target} has no attribute {attribute!r}") from exc
    else:
        found = getattr(module, "WORKLOAD", None) or _single_workload_class(module, target)
    if inspect.isclass(found) and issubclass(found, Workload):
        found = found()
    if not isinstance(found, Workload):
        raise ConfigurationError("workload", f"{reference} is not a batchbox Workload")
    return found


def _load_module(target: str) -> ModuleType:
    path = Path(target)
    if target.endswith(".py") or path.exists():
        if not path.is_file():
            raise ConfigurationError("workload", f"no such workload file: {target}")
        name = f"batchbox_workload_{abs(hash(path.resolve()))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigurationError("workload", f"cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigurationError("workload", f"{target} failed to load: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise ConfigurationError("workload", f"cannot import {target}: {exc}") from exc


def _single_workload_class(module: ModuleType, target: str) -> type[Workload]:
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Workload)
        and obj is not Workload
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if len(classes) != 1:
        raise ConfigurationError(
            "workload", f"{target} defines {len(classes)} workload classes; name one as {target}:Name or set WORKLOAD"
        )
    return classes[0]
