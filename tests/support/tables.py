"""The desk's Faust table as the worker keeps it, for tests that drive ``PartitionDesk``
without Faust: values are JSON bytes (``faust_runner.encode_value``), which the worker's table
takes raw; anything else is refused, as the changelog would refuse it. ``put`` and ``value``
write and read a JSON value for the tests that look into the table themselves."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson


class CodecTable(MutableMapping[str, bytes]):
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def __getitem__(self, key: str) -> bytes:
        return self.data[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"the desk table holds JSON bytes, not {type(value).__name__}")
        orjson.loads(value)  # JSON, or it raises
        self.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.data))

    def __len__(self) -> int:
        return len(self.data)

    def put(self, key: str, value: Any) -> None:
        self[key] = orjson.dumps(value)

    def value(self, key: str) -> Any:
        return orjson.loads(self.data[key])
