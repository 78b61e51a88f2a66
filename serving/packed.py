"""Read-only day -> value tables stored compactly: the memory of a model's precomputed answers.

A model answers about 4,700 days, each with some twenty byte strings (the answers and the pieces
that level and range answers splice). As dicts of bytes objects, each string costs its content
plus about 33 bytes of object header and 40 of dict entry: most of an asset's memory. Here a
table is one bytes object and an array of offsets, and the days' positions are one dict shared
by every table of the model: each string costs its content and 8 bytes.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import accumulate


class DayTable(Mapping):
    """A read-only mapping over the days of `positions` (day -> index), in their order."""

    __slots__ = ("_positions",)

    def __init__(self, positions: Mapping[str, int], count: int) -> None:
        if count != len(positions):
            raise ValueError(f"{count} values for {len(positions)} days")
        self._positions = positions

    def __contains__(self, day: object) -> bool:
        return day in self._positions

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._positions)


class PackedBytes(DayTable):
    """Byte strings keyed by day, stored end to end in one bytes object."""

    __slots__ = ("_blob", "_ends")

    def __init__(self, positions: Mapping[str, int], parts: Iterable[bytes]) -> None:
        parts = list(parts)
        super().__init__(positions, len(parts))
        self._blob = b"".join(parts)
        self._ends = array("Q", accumulate(map(len, parts), initial=0))

    def __getitem__(self, day: str) -> bytes:
        index = self._positions[day]
        return self._blob[self._ends[index] : self._ends[index + 1]]


class PackedInts(DayTable):
    """Integers keyed by day, stored in an array."""

    __slots__ = ("_values",)

    def __init__(self, positions: Mapping[str, int], values: Iterable[int]) -> None:
        self._values = array("q", values)
        super().__init__(positions, len(self._values))

    def __getitem__(self, day: str) -> int:
        return self._values[self._positions[day]]


class DerivedBytes(DayTable):
    """Byte strings made on request from another table's: for those read rarely, a slice or two
    of one that is kept."""

    __slots__ = ("_make", "_source")

    def __init__(self, source: DayTable, make: Callable[[bytes], bytes]) -> None:
        super().__init__(source._positions, len(source))
        self._source, self._make = source, make

    def __getitem__(self, day: str) -> bytes:
        return self._make(self._source[day])


def positions_of(days: Iterable[str]) -> dict[str, int]:
    """Each day's index, in order: the one dict every table of a model shares."""
    return {day: index for index, day in enumerate(days)}
