"""``wsgi.input`` against io.BytesIO, over every way a body can arrive.

The reader holds the pieces the loop received without joining them, so each
read must stitch the right bytes across piece boundaries. A stand-in for the
exchange hands it the pieces; BytesIO over the whole body says what every
read must return.
"""

from __future__ import annotations

import io
import random
from typing import Any, cast

import pytest

from iodine.http.wsgi import RequestBody

BODY = (
    b"".join(
        b"line %d: %s\n" % (number, b"x" * (number * 7 % 23)) for number in range(40)
    )
    + b"no newline at the end"
)


class Arrivals:
    """What ``WsgiExchange.pull`` returns: the pieces received since the last
    pull, a few at a time, then an empty list for the end of the body."""

    def __init__(self, pieces: list[bytes], per_pull: int) -> None:
        self.pieces = pieces
        self.per_pull = per_pull
        self.pulls = 0

    def pull(self) -> list[bytes]:
        self.pulls += 1
        taken = self.pieces[: self.per_pull]
        del self.pieces[: self.per_pull]
        return taken


def split(body: bytes, sizes: list[int]) -> list[bytes]:
    pieces, start, turn = [], 0, 0
    while start < len(body):
        size = sizes[turn % len(sizes)]
        pieces.append(body[start : start + size])
        start += size
        turn += 1
    return pieces


def reader(pieces: list[bytes], per_pull: int = 1) -> tuple[RequestBody, Arrivals]:
    arrivals = Arrivals(list(pieces), per_pull)
    return RequestBody(cast(Any, arrivals)), arrivals


SPLITS = {
    "one piece": [len(BODY)],
    "bytes": [1],
    "small": [3, 5, 7],
    "lines": [9, 30, 2],
    "large": [200, 64],
}


@pytest.mark.parametrize("sizes", SPLITS.values(), ids=list(SPLITS))
@pytest.mark.parametrize("per_pull", [1, 3])
@pytest.mark.parametrize("seed", range(5))
def test_mixed_reads_return_what_a_file_would(
    sizes: list[int], per_pull: int, seed: int
) -> None:
    body, _ = reader(split(BODY, sizes), per_pull)
    expected = io.BytesIO(BODY)
    rng = random.Random(seed)
    for _ in range(400):
        operation = rng.choice(["read", "readline", "readline-limit", "read-0"])
        if operation == "read":
            size = rng.choice([1, 2, 10, 64, 300])
            assert body.read(size) == expected.read(size)
        elif operation == "readline":
            assert body.readline() == expected.readline()
        elif operation == "readline-limit":
            limit = rng.choice([0, 1, 5, 40])
            assert body.readline(limit) == expected.readline(limit)
        else:
            assert body.read(0) == b""
    assert body.read() == expected.read()
    assert body.read() == b""
    assert body.readline() == b""


@pytest.mark.parametrize("sizes", SPLITS.values(), ids=list(SPLITS))
def test_read_all_readlines_and_iteration(sizes: list[int]) -> None:
    pieces = split(BODY, sizes)
    assert reader(pieces)[0].read() == BODY
    assert reader(pieces)[0].read(None) == BODY
    assert reader(pieces)[0].readlines() == io.BytesIO(BODY).readlines()
    assert reader(pieces)[0].readlines(100) == io.BytesIO(BODY).readlines(100)
    assert list(reader(pieces)[0]) == list(io.BytesIO(BODY))


def test_a_whole_piece_is_handed_over_without_a_copy() -> None:
    pieces = [b"a" * 1000, b"b" * 1000]
    body, _ = reader(pieces)
    assert body.read(1000) is pieces[0]
    assert body.read(1000) is pieces[1]


def test_a_read_waits_for_no_more_than_it_needs() -> None:
    # A read is served from what has arrived once that is enough: the
    # application gets the start of a large body before the rest is sent.
    body, arrivals = reader([b"abc", b"def", b"ghi"])
    assert body.read(4) == b"abcd"
    assert arrivals.pulls == 2
    assert body.readline() == b"efghi"
    assert arrivals.pulls == 4  # the last pull found the end of the body
