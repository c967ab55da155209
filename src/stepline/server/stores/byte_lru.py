"""A cache bounded by bytes, least recently used out first: what keeps the server's memory from growing with
the logbook it serves.

    cache = ByteLRU(256 << 20)
    cache.put(key, value, size=value.nbytes)
    cache.get(key)      # None once evicted
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Key = tuple[Any, ...]


class ByteLRU:
    """Entries with a size each; past ``limit`` bytes in all, the least recently used go. An entry larger than
    the limit is not kept at all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._entries: OrderedDict[Key, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Key, value: Any, size: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= old[1]
            if size > self.limit:
                return
            self._entries[key] = (value, size)
            self.size += size
            while self.size > self.limit:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.size -= dropped

    def discard(self, matches: Callable[[Key], bool]) -> None:
        """Drop every entry whose key ``matches``."""
        with self._lock:
            for key in [key for key in self._entries if matches(key)]:
                self.size -= self._entries.pop(key)[1]
