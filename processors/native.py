"""Which of the domain's modules are compiled with mypyc, and whether they run compiled.

``COMPILED`` is the one list of them: ``setup.py`` builds it (unless ``SUPPORTSTREAM_NATIVE=0``),
the Makefile's install stamp, ``tests/conftest.py``'s stale-module guard and the replay
benchmark's header read it. Compiled modules behave as their sources do for every input their
annotations describe, and check those annotations at run time: a module handed untyped input
(YAML, JSON) stays interpreted unless its annotations are honest about it.

``SUPPORTSTREAM_INTERPRETED=1`` (read by ``processors/__init__.py`` before any of these modules
is imported, in every process that inherits it) loads them from their ``.py`` sources even where
compiled modules are installed: how the interpreted path stays tested, and how to try an edit
without rebuilding. docs/DEVELOPING.md, "Compiled modules".

This module imports nothing but the standard library: ``setup.py`` loads it by its path.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

COMPILED: Final[tuple[str, ...]] = (
    "processors.model",
    "processors.ids",
    "processors.timeutil",
    "processors.calendar",
    "processors.sla",
    "processors.slabook",
    "processors.events",
    "processors.incidents",
    "processors.promises",
    "processors.classify",
    "processors.assignment",
    "processors.threads",
    "processors.identity",
    "processors.fastreplace",
    "processors.quality",
    "processors.desk",
    "processors.parsing.mail",
    "processors.avro",
    "processors.rows",
)
"""The modules mypyc compiles, as one group (their shared library: ``GROUP``)."""

GROUP: Final = "supportstream"
"""mypyc's group name: the group's shared library is the top-level ``supportstream__mypyc``."""

INTERPRETED_ENV: Final = "SUPPORTSTREAM_INTERPRETED"

ROOT: Final = Path(__file__).resolve().parents[1]
"""The directory holding the ``processors`` package (the checkout, or site-packages)."""


def source_path(name: str, root: Path = ROOT) -> Path:
    """The ``.py`` source of the compiled module ``name`` under ``root``."""
    return root.joinpath(*name.split(".")).with_suffix(".py")


def compiled_paths(name: str, root: Path = ROOT) -> list[Path]:
    """The extension modules built for ``name`` beside its source (none: not compiled there)."""
    stem = source_path(name, root).with_suffix("")
    return _existing(stem.with_name(stem.name + suffix) for suffix in _SUFFIXES)


def native_modules() -> list[str]:
    """The modules of ``COMPILED`` that import (or imported) compiled in this process."""
    found = []
    for name in COMPILED:
        module = sys.modules.get(name)
        if module is not None:
            compiled = _is_extension(getattr(module, "__file__", None))
        else:
            spec = importlib.util.find_spec(name)
            compiled = spec is not None and _is_extension(spec.origin)
        if compiled:
            found.append(name)
    return found


def describe() -> str:
    """One line saying how the domain runs here, for benchmark headers and start logs."""
    native = native_modules()
    if not native:
        return "processors interpreted (not compiled)"
    if len(native) == len(COMPILED):
        return f"processors compiled with mypyc: {len(native)} modules"
    return f"processors compiled with mypyc: {len(native)} of {len(COMPILED)} modules"


def stale_sources(root: Path = ROOT) -> list[Path]:
    """The domain's sources newer than the oldest compiled module under ``root``.

    mypyc compiles the group against the types of everything it imports (``rules.py`` too),
    so any newer source of the package may make a compiled module disagree with it; and Python
    imports an extension module before the ``.py`` beside it, so an edit would not run."""
    built = _built(root)
    if not built:
        return []
    oldest = min(path.stat().st_mtime for path in built)
    return sorted(
        path for path in (root / "processors").rglob("*.py") if path.stat().st_mtime > oldest
    )


def build_problems(root: Path = ROOT) -> list[str]:
    """What makes the compiled modules under ``root`` disagree with the sources, one sentence
    each (none: they were built from these sources, or nothing is compiled there)."""
    problems = []
    for source in stale_sources(root):
        own = compiled_paths(_module_of(source, root), root)
        what = "its compiled module" if own else "the modules compiled against it"
        problems.append(f"{source.relative_to(root)} is newer than {what}")
    if _built(root):
        for path in leftover_extensions(COMPILED, root):
            problems.append(
                f"{path.relative_to(root)} is not of a module processors.native compiles"
            )
    return problems


def _module_of(source: Path, root: Path) -> str:
    return ".".join(source.relative_to(root).with_suffix("").parts)


def leftover_extensions(keep: Sequence[str], root: Path = ROOT) -> list[Path]:
    """Extension modules of the package under ``root`` that are not of the modules ``keep``
    (an earlier build's), and the group's shared library when ``keep`` is empty."""
    kept = {path for name in keep for path in compiled_paths(name, root)}
    found = [
        path
        for suffix in _SUFFIXES
        for path in (root / "processors").rglob("*" + suffix)
        if path not in kept
    ]
    if not keep:
        found += _existing(root / (GROUP + "__mypyc" + suffix) for suffix in _SUFFIXES)
    return sorted(set(found))


_SUFFIXES: Final = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _existing(paths: Iterable[Path]) -> list[Path]:
    return [path for path in paths if path.exists()]


def _built(root: Path) -> list[Path]:
    """Every compiled module of ``COMPILED`` under ``root``."""
    return [path for name in COMPILED for path in compiled_paths(name, root)]


def _is_extension(origin: str | None) -> bool:
    return origin is not None and origin.endswith(_SUFFIXES)


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of ``COMPILED`` as their ``.py`` sources, ahead of the extension
    modules the path finder would pick first."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED or not path:
            return None
        stem = fullname.rpartition(".")[2]
        for directory in path:
            source = Path(directory, stem + ".py")
            if source.exists():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def run_interpreted() -> None:
    """Load the modules of ``COMPILED`` from their sources in this process from now on."""
    if not any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder())
