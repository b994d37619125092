"""The language model, decompressed once per machine (``SUPPORTSTREAM_CACHE_DIR``).

py3langid ships its model compressed with LZMA (4.5 MB holding 68 MB of arrays), and every
process that detects a ticket's language decompresses it: each worker that holds the desk or
its standby, each replay's parse process, the demo. The first such process writes the
model's arrays uncompressed into the cache directory; the next ones map them from there, at
a tenth of the CPU (``python -m loadtest.bench_language`` measures both), and processes on
one machine share the pages. Writing an entry removes those of other models. The cache holds
the very arrays the packaged model holds (``tests/streams/test_model_cache.py`` compares
them), so a detector answers the same either way.

A cache that cannot be written or read is no error: the process decompresses the packaged
model, as without a cache, and logs a warning naming the directory. A cache entry is named
after the packaged model's SHA-256, so a new py3langid release writes a new entry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from processors.language import packaged_model

__all__ = ["CachedModel", "load_model", "packaged_model_digest"]

log = structlog.get_logger("supportstream.model_cache")

ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")
"""The arrays of py3langid's model file (``py3langid.modelio``), one ``.npy`` file each."""

_STDLIB_TYPECODES = {2: "H", 4: "I", 8: "L"}

# numpy and py3langid are imported where the model is loaded: every command installs a
# CachedModel, and most never detect a language.


@dataclass(frozen=True)
class CachedModel:
    """A loader for ``processors.language.use_model_loader``: the model from the cache in
    ``directory`` (absolute: replay's parse processes run elsewhere), written there first if
    it is not there yet. It pickles, so a parse process loads the model as its parent does."""

    directory: Path

    def __call__(self) -> Any:
        return load_model(self.directory)


def packaged_model_digest() -> str:
    """The SHA-256 of the model file py3langid ships: a cache entry's name."""
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    return hashlib.sha256(Path(MODEL_DIR, MODEL_FILE).read_bytes()).hexdigest()


def load_model(directory: Path) -> Any:
    """py3langid's full identifier, from the cache in ``directory``; see the module's
    docstring for what happens when the cache cannot be used."""
    entry = directory / f"py3langid-{packaged_model_digest()[:16]}"
    try:
        return _identifier(_mapped(entry))
    except (OSError, ValueError):
        if entry.exists():
            log.warning("language model cache unreadable; writing it again", entry=str(entry))
            shutil.rmtree(entry, ignore_errors=True)
    identifier = packaged_model()
    try:
        _write(entry, _arrays(identifier))
    except OSError as exc:
        log.warning(
            "language model cache not written; every process decompresses the model",
            directory=str(directory),
            error=str(exc),
        )
    else:
        log.info("language model cached", entry=str(entry))
        _prune(entry)
    return identifier


def _prune(entry: Path) -> None:
    """Remove the entries of other models beside ``entry`` (an upgraded py3langid left them),
    and scratch directories a writer killed midway left over an hour ago. A process still
    mapping a removed entry keeps its pages; one that still uses that model writes it anew."""
    for other in entry.parent.iterdir():
        if other == entry or not other.is_dir():
            continue
        if other.name.startswith("py3langid-") or (
            other.name.startswith(".py3langid-") and time.time() - other.stat().st_mtime > 3600
        ):
            shutil.rmtree(other, ignore_errors=True)


def _mapped(entry: Path) -> dict[str, Any]:
    import numpy as np

    # np.load checks each header against the file's size: a truncated array is a ValueError.
    return {
        name: np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS
    }


def _arrays(identifier: Any) -> dict[str, Any]:
    """The model of py3langid's full ``identifier`` as the arrays of its model file
    (``py3langid.modelio``): :func:`_identifier` builds the same identifier from them."""
    import numpy as np

    def unsigned(values: array[int]) -> Any:
        return np.frombuffer(values, dtype=f"u{values.itemsize}")

    return {
        "ptc": identifier.nb_ptc,
        "pc": identifier.nb_pc,
        "classes": np.array(identifier.nb_classes),
        "nextmove": unsigned(identifier.tk_nextmove),
        "nextmove_row": unsigned(identifier.tk_row),
        "out_feat": np.asarray(identifier.tk_output, dtype=np.int32),
    }


def _write(entry: Path, arrays: dict[str, Any]) -> None:
    """Every array to a scratch directory beside ``entry``, synced, then the directory renamed
    into place: a reader sees a whole entry or none. Of two processes writing at once, the
    first rename wins and the other's scratch is removed."""
    import numpy as np

    entry.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        for name, value in arrays.items():
            with open(scratch / f"{name}.npy", "wb") as file:
                np.save(file, value, allow_pickle=False)
                file.flush()
                os.fsync(file.fileno())
        scratch.chmod(0o755)  # mkdtemp's 0700 would hide it from the other users of the cache
        try:
            os.rename(scratch, entry)
        except OSError:
            if not entry.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _identifier(arrays: dict[str, Any]) -> Any:
    """The identifier py3langid's ``LanguageIdentifier.from_model_file`` builds from the
    same arrays (``py3langid.modelio.load_model``): the state machine as standard arrays."""
    import numpy as np
    from py3langid.langid import LanguageIdentifier

    return LanguageIdentifier(
        np.asarray(arrays["ptc"]),
        np.asarray(arrays["pc"]),
        arrays["classes"].tolist(),
        _stdlib_array(arrays["nextmove"]),
        arrays["out_feat"].tolist(),
        tk_row=_stdlib_array(arrays["nextmove_row"]),
    )


def _stdlib_array(values: Any) -> array[int]:
    import numpy as np

    result = array(_STDLIB_TYPECODES[values.dtype.itemsize])
    result.frombytes(np.ascontiguousarray(values).data.cast("B"))
    return result
