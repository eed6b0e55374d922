"""Numbered sequences kept with nothing but point reads and unique inserts.

FerretDB 1.x answers only ``{_id: <value>}`` from its index, so a sequence
whose items are documents ``<key>#<n>`` (n = 1, 2, 3... without holes, each
taken as the latest + 1 by a unique insert) is read by ``_id`` alone: its
latest item is found from any item known to exist by probing up in
doubling strides, then halving. The change steps of a file
(:mod:`dtpoc_files.references`) and the rows of a listing by output
(:mod:`dtpoc_files.output_rows`) are such sequences.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def climb(at: Callable[[int], Awaitable[T | None]], low: int, found: T) -> tuple[int, T]:
    """The latest item of a sequence, given that item ``low`` (``found``) exists.

    ``at(n)`` reads item ``n`` (None when it does not exist).
    """
    latest = found
    stride = 1
    high = low + stride
    while (candidate := await at(high)) is not None:
        low, latest = high, candidate
        stride *= 2
        high = low + stride
    while high - low > 1:  # item ``low`` exists, item ``high`` does not
        middle = (low + high) // 2
        candidate = await at(middle)
        if candidate is None:
            high = middle
        else:
            low, latest = middle, candidate
    return low, latest
