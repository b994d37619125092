"""processors.native: which modules run compiled, the stale-module guard's findings, and the
behaviours the compiled modules keep from the interpreter (docs/REPLAY.md, "What runs
compiled")."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from processors import native
from processors.ids import lower, normalize_email, normalize_message_id

REPO = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _describe(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from processors.native import describe; print(describe())"],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_the_sources_run_when_interpreted_is_asked_for() -> None:
    assert _describe(SUPPORTSTREAM_INTERPRETED="1") == "processors interpreted (not compiled)"


def test_describe_names_how_many_modules_run_compiled() -> None:
    built = [name for name in native.COMPILED if native.compiled_paths(name, REPO)]
    shown = _describe(SUPPORTSTREAM_INTERPRETED="0")
    if not built:  # a pure install (SUPPORTSTREAM_NATIVE=0)
        assert shown == "processors interpreted (not compiled)"
    else:
        assert shown == f"processors compiled with mypyc: {len(built)} modules"


def test_this_process_imported_the_modules_the_install_holds() -> None:
    import processors.desk
    import processors.parsing.mail

    running = native.native_modules()
    if os.environ.get(native.INTERPRETED_ENV) == "1":
        assert running == []
        assert processors.desk.__file__ is not None and processors.desk.__file__.endswith(".py")
    else:
        assert running == [n for n in native.COMPILED if native.compiled_paths(n, REPO)]


def _tree(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def _age(path: Path, seconds: float) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))


def test_a_source_newer_than_the_compiled_modules_is_named(tmp_path: Path) -> None:
    _tree(tmp_path, *(f"processors/{name}.py" for name in ("__init__", "desk", "model", "rules")))
    _tree(tmp_path, f"processors/desk{SUFFIX}", f"processors/model{SUFFIX}")
    assert native.build_problems(tmp_path) == []  # built after the sources
    for name in ("desk", "model"):
        _age(tmp_path / f"processors/{name}{SUFFIX}", 60)
    for name in ("__init__", "model", "rules"):
        _age(tmp_path / f"processors/{name}.py", 120)
    assert native.build_problems(tmp_path) == [
        "processors/desk.py is newer than its compiled module"
    ]
    (tmp_path / "processors/rules.py").touch()
    assert native.build_problems(tmp_path) == [
        "processors/desk.py is newer than its compiled module",
        "processors/rules.py is newer than the modules compiled against it",
    ]


def test_an_extension_module_no_longer_compiled_is_named(tmp_path: Path) -> None:
    _tree(tmp_path, "processors/desk.py", "processors/timers.py")
    _tree(tmp_path, f"processors/desk{SUFFIX}", f"processors/timers{SUFFIX}")
    assert "processors.timers" not in native.COMPILED
    assert native.build_problems(tmp_path) == [
        f"processors/timers{SUFFIX} is not of a module processors.native compiles"
    ]
    _tree(tmp_path, f"{native.GROUP}__mypyc{SUFFIX}")
    assert native.leftover_extensions((), tmp_path) == sorted(
        [
            tmp_path / f"processors/desk{SUFFIX}",
            tmp_path / f"processors/timers{SUFFIX}",
            tmp_path / f"{native.GROUP}__mypyc{SUFFIX}",
        ]
    )


def test_nothing_compiled_is_nothing_stale(tmp_path: Path) -> None:
    _tree(tmp_path, "processors/desk.py")
    assert native.build_problems(tmp_path) == []


@given(st.lists(st.sampled_from([*"AΣΑΟΔσς İIı@.- \u0345ẞ", "ΟΔΟΣ", "x"])).map("".join))
def test_lower_is_the_interpreters_lower_final_sigma_included(text: str) -> None:
    assert lower(text) == str.lower(text)


def test_addresses_and_message_ids_lower_case_a_final_sigma_as_python_does() -> None:
    assert normalize_email(" ΟΔΟΣ@Example.RU ") == "οδος@example.ru"
    assert normalize_message_id("<ΑΣ@Σ>") == "ας@σ"
