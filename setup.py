"""The build's one dynamic part: the domain's hot modules compiled with mypyc.

pyproject.toml holds the metadata. ``processors.native.COMPILED`` lists the modules; they are
compiled as one group (a C extension per module and the group's shared library), unless
``SUPPORTSTREAM_NATIVE=0``: then the package is pure Python and computes the same results.
Building needs a C compiler and Python's headers (README, its opening section).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup

HERE = Path(__file__).resolve().parent


def _native() -> Any:
    spec = importlib.util.spec_from_file_location("_native", HERE / "processors" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ext_modules() -> list[Any]:
    native = _native()
    setting = os.environ.get("SUPPORTSTREAM_NATIVE", "1")
    if setting not in ("0", "1"):
        sys.exit(f"SUPPORTSTREAM_NATIVE must be 0 or 1, not {setting!r}")
    if {"editable_wheel", "develop"} & set(sys.argv):
        # An earlier editable install left extension modules beside the sources, which Python
        # imports before them: an editable install removes those it does not make again. (Not
        # a wheel built from the checkout: it leaves the checkout's own install alone.)
        keep = () if setting == "0" else native.COMPILED
        for path in native.leftover_extensions(keep, HERE):
            print(f"setup.py: removing {path.relative_to(HERE)}, which this build does not make")
            path.unlink()
    if setting == "0":
        return []
    from mypyc.build import mypycify

    sources = [str(native.source_path(name, HERE).relative_to(HERE)) for name in native.COMPILED]
    return list(mypycify(sources, opt_level="3", group_name=native.GROUP))


setup(ext_modules=_ext_modules())
