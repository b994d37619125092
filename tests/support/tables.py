"""The desk's Faust table as the worker keeps it, for tests that drive ``PartitionDesk``
without Faust: every value goes through orjson, the worker's table codec, which refuses what
JSON cannot hold (a lone surrogate, a non-str key), as the changelog would."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson


class CodecTable(MutableMapping[str, Any]):
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(self.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = orjson.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.data))

    def __len__(self) -> int:
        return len(self.data)
