"""Finding what catalog modules define: journeys (`JOURNEY`, `TRIGGERS`) and segments
(`SEGMENT`) are registered by being a module of their package."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from types import ModuleType


def exposed(package: ModuleType, attribute: str) -> Iterator[tuple[ModuleType, object]]:
    """Each public module of `package` with its `attribute` (None where it has none): how
    the journey, trigger and segment registries find what the catalog modules define."""
    for module_info in pkgutil.iter_modules(package.__path__):
        if not module_info.name.startswith("_"):
            module = importlib.import_module(f"{package.__name__}.{module_info.name}")
            yield module, getattr(module, attribute, None)
