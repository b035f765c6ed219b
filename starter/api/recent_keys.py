"""A bounded memory of recently seen keys (least recently used forgotten first)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RecentKeys:
    """Remembers up to `size` keys with a value each. The public tracking endpoints use
    it to skip work a repeat would only redo: link scanners and impatient readers fetch
    the same tracked link many times, and each repeat used to cost a database round trip
    and an attempted insert (docs/performance.md)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, object] = OrderedDict()

    def get(self, key: Hashable) -> object | None:
        """The value remembered for `key`, or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: object = True) -> None:
        """Remember `key` (forgetting the least recently used key when full)."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
