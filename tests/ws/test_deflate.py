"""permessage-deflate (RFC 7692): the offer parsing, the codec without
sockets, and compressing connections through the real HTTP server, both the
ASGI ``websocket`` scope (``/echo``) and native handlers (``/native``)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import ClientConnection, connect

from iodine import CloseReason, Reactor
from iodine.http.config import from_options
from iodine.http.websocket import deflate, frames
from iodine.http.websocket.frames import ProtocolError
from tests.http.conftest import Server
from tests.ws.conftest import (
    Recorder,
    Runner,
    ServerPool,
    deflate_answer,
    handshake_request,
    read_frame,
    read_head,
    wait_for,
)

# Small enough that a bomb is cheap to build, big enough for real messages.
MAX_MESSAGE = 64 * 1024

PATHS = ["/echo", "/native"]

_TAIL = b"\x00\x00\xff\xff"


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Server]]:
    """``servers(**options)``: a server of ``asgi_ws_apps:app``, shared by the
    module's tests that ask for the same options."""
    pool = ServerPool(tmp_path_factory.mktemp("servers"))

    def start(**options: Any) -> Server:
        return pool.get("tests.ws.asgi_ws_apps:app", **options)

    yield start
    pool.stop()


@pytest.fixture
def compressing(servers: Callable[..., Server]) -> Server:
    return servers(websocket_compression=True, max_message=MAX_MESSAGE)


@contextmanager
def ws(server: Server, path: str, **kwargs: Any) -> Iterator[ClientConnection]:
    with connect(
        f"ws://127.0.0.1:{server.port}{path}",
        open_timeout=5,
        max_size=4 * MAX_MESSAGE,
        **kwargs,
    ) as client:
        if path == "/native":
            # NativeEcho greets first: its protocol and its subprotocol.
            assert client.recv(timeout=5) == "open websocket websocket /native"
            assert client.recv(timeout=5) == "subprotocol None"
        yield client


def compress(data: bytes, compressor: Any = None) -> bytes:
    """One message's payload as section 7.2.1 has a sender build it."""
    compressor = compressor or zlib.compressobj(wbits=-9)
    out: bytes = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(_TAIL)
    return out[: -len(_TAIL)]


def client_frame(
    opcode: int, payload: bytes, *, rsv1: bool = False, fin: bool = True
) -> bytes:
    """A masked client frame, with RSV1 (compressed) if asked."""
    mask = frames.new_mask()
    size = len(payload)
    if size < 126:
        length = bytes((0x80 | size,))
    elif size < 0x10000:
        length = bytes((0x80 | 126,)) + size.to_bytes(2, "big")
    else:
        length = bytes((0x80 | 127,)) + size.to_bytes(8, "big")
    first = 0x80 * fin | 0x40 * rsv1 | opcode
    return bytes((first,)) + length + mask + frames.unmask(payload, mask)


def payload_of(frame: bytes) -> bytes:
    """The payload of one frame under 64 KiB, unmasked if masked."""
    size = frame[1] & 0x7F
    start = 2 if size < 126 else 4
    if frame[1] & 0x80:
        mask = frame[start : start + 4]
        return frames.unmask(frame[start + 4 :], mask)
    return frame[start:]


# ------------------------------------------------------ negotiate (no I/O)


@pytest.mark.parametrize(
    ("offer", "response", "server_bits", "client_bits"),
    [
        ("permessage-deflate", "permessage-deflate; server_max_window_bits=10", 10, 15),
        (
            # What browsers and the websockets client send.
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
            10,
            10,
        ),
        (
            "permessage-deflate; client_max_window_bits=12; server_max_window_bits=12",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
            10,
            10,
        ),
        (
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
            9,
            9,
        ),
        (
            # zlib has no 8-bit inflate window; a larger one reads it fine.
            "permessage-deflate; client_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=8",
            10,
            9,
        ),
        (
            'Permessage-Deflate; Server_Max_Window_Bits="11"',
            "permessage-deflate; server_max_window_bits=10",
            10,
            15,
        ),
    ],
)
def test_offers_are_answered_within_the_servers_windows(
    offer: str, response: str, server_bits: int, client_bits: int
) -> None:
    agreement = deflate.negotiate([offer])
    assert agreement is not None
    assert agreement.response.decode() == response
    assert (agreement.server_bits, agreement.client_bits) == (server_bits, client_bits)
    assert not agreement.server_no_context_takeover
    assert not agreement.client_no_context_takeover


def test_context_takeover_parameters_are_echoed_and_kept() -> None:
    agreement = deflate.negotiate(
        ["permessage-deflate; client_no_context_takeover; server_no_context_takeover"]
    )
    assert agreement is not None
    assert agreement.response == (
        b"permessage-deflate; server_no_context_takeover; "
        b"client_no_context_takeover; server_max_window_bits=10"
    )
    assert agreement.server_no_context_takeover
    assert agreement.client_no_context_takeover


@pytest.mark.parametrize(
    "offer",
    [
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot
        "permessage-deflate; server_max_window_bits",  # needs a value
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=ten",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; mystery=1",
        "permessage-deflate;",
    ],
)
def test_offers_breaking_section_7_are_declined(offer: str) -> None:
    assert deflate.negotiate([offer]) is None


def test_the_first_acceptable_offer_wins() -> None:
    agreement = deflate.negotiate(
        [
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate",
        ]
    )
    assert agreement is not None
    assert agreement.server_no_context_takeover
    assert deflate.negotiate([]) is None


# ------------------------------------------- the client's side (no I/O)


@pytest.mark.parametrize(
    ("answer", "server_bits", "client_bits", "server_reset", "client_reset"),
    [
        ("permessage-deflate", 15, 10, False, False),
        ("permessage-deflate; server_max_window_bits=12", 12, 10, False, False),
        # Allowed a larger window than it wants, the client keeps to 10.
        ("permessage-deflate; client_max_window_bits=15", 15, 10, False, False),
        ("permessage-deflate; client_max_window_bits=9", 15, 9, False, False),
        # zlib inflates an 8-bit sender's data with a 9-bit window.
        ("permessage-deflate; server_max_window_bits=8", 9, 10, False, False),
        (
            "permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover",
            15,
            10,
            True,
            True,
        ),
    ],
)
def test_the_client_takes_a_servers_answer(
    answer: str,
    server_bits: int,
    client_bits: int,
    server_reset: bool,
    client_reset: bool,
) -> None:
    agreement = deflate.accept([answer])
    assert (agreement.server_bits, agreement.client_bits) == (server_bits, client_bits)
    assert agreement.server_no_context_takeover is server_reset
    assert agreement.client_no_context_takeover is client_reset


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        (["x-webkit-deflate-frame"], "invalid permessage-deflate answer"),
        (["permessage-deflate", "permessage-deflate"], "did not offer"),
        # An answer has to name the window it allows.
        (["permessage-deflate; client_max_window_bits"], "without a value"),
        (["permessage-deflate; client_max_window_bits=8"], "below zlib's 9"),
        (["permessage-deflate; server_max_window_bits=16"], "invalid"),
        (["permessage-deflate; mystery"], "invalid"),
    ],
)
def test_the_client_refuses_an_answer_outside_its_offer(
    answers: list[str], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        deflate.accept(answers)


def test_client_codec_masks_and_inflates_a_servers_frames() -> None:
    client = deflate.accept(["permessage-deflate; server_max_window_bits=10"]).codec(
        MAX_MESSAGE, client=True
    )
    text = "compress me " * 400
    frame = client.encode(text)
    assert frame[0] == 0xC1  # FIN, RSV1 (compressed), text
    assert frame[1] & 0x80  # masked, as a client must
    assert len(frame) < len(text) // 4

    # What a server with a 10-bit window sends, read back by the client.
    payload = compress(text.encode(), zlib.compressobj(wbits=-10))
    server_frame = bytes((0xC1, 126)) + len(payload).to_bytes(2, "big") + payload
    if len(payload) < 126:
        server_frame = bytes((0xC1, len(payload))) + payload
    assert client.receive(server_frame) == [(frames.TEXT, text)]


# ---------------------------------------------------------- codec (no I/O)


def codec(offer: str = "permessage-deflate", limit: int = 1000) -> Any:
    agreement = deflate.negotiate([offer])
    assert agreement is not None
    return agreement.codec(limit)


def test_codec_inflates_what_a_client_compressed() -> None:
    decoder = codec()
    compressor = zlib.compressobj(wbits=-15)
    first = client_frame(frames.TEXT, compress(b"hello " * 50, compressor), rsv1=True)
    again = client_frame(frames.TEXT, compress(b"hello " * 50, compressor), rsv1=True)
    plain = client_frame(frames.BINARY, b"\x00\x01")
    assert len(again) < len(first)  # the second leans on the first
    assert decoder.receive(first + again + plain) == [
        (frames.TEXT, "hello " * 50),
        (frames.TEXT, "hello " * 50),
        (frames.BINARY, b"\x00\x01"),
    ]


def test_codec_keeps_message_state_across_control_frames() -> None:
    decoder = codec()
    payload = compress(b"fragmented message")
    ping = client_frame(frames.PING, b"p")
    # A ping between two messages, then one between two fragments.
    data = ping + client_frame(frames.TEXT, payload, rsv1=True)
    data += client_frame(frames.BINARY, payload[:5], rsv1=True, fin=False)
    data += ping + client_frame(frames.CONTINUATION, payload[5:])
    assert decoder.receive(data) == [
        (frames.PING, b"p"),
        (frames.TEXT, "fragmented message"),
        (frames.PING, b"p"),
        (frames.BINARY, b"fragmented message"),
    ]


@pytest.mark.parametrize("size", [1001, 10_000_000])
def test_codec_refuses_to_inflate_past_the_limit(size: int) -> None:
    decoder = codec(limit=1000)
    ok = client_frame(frames.BINARY, compress(b"\0" * 1000), rsv1=True)
    bomb = client_frame(frames.BINARY, compress(b"\0" * size), rsv1=True)
    with pytest.raises(ProtocolError) as caught:
        decoder.receive(ok + bomb)
    assert caught.value.code == 1009
    assert caught.value.events == [(frames.BINARY, b"\0" * 1000)]


def test_codec_never_holds_an_inflated_bomb() -> None:
    decoder = codec(limit=1000)
    bomb = client_frame(frames.BINARY, compress(b"\0" * 20_000_000), rsv1=True)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            decoder.receive(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # zlib stopped a byte past the limit instead of writing out 20 MB.
    assert peak < 1_000_000


def test_codec_output_decodes_with_the_agreed_window() -> None:
    encoder = codec("permessage-deflate; server_max_window_bits=9")
    text = "".join(random.choice("abcdef") for _ in range(600)) * 4
    frame = encoder.encode(text)
    assert frame[0] == 0xC1  # FIN, RSV1, text
    inflater = zlib.decompressobj(wbits=-9)
    assert inflater.decompress(payload_of(frame) + _TAIL).decode() == text


# ------------------------------------------- window and memLevel settings

# Text whose deflate output differs with every window and memLevel used
# below, so a payload equal to zlib's own says which settings made it.
SAMPLE = bytes(random.Random(5).choices(b"abcdefghij ", k=6000)).decode()


def deflated(bits: int, mem_level: int, *messages: str) -> bytes:
    """The payload a sender with these settings puts on the wire for the
    last of ``messages`` (the ones before it fill the window first)."""
    compressor = zlib.compressobj(-1, zlib.DEFLATED, -bits, mem_level)
    return [compress(m.encode(), compressor) for m in messages][-1]


def test_the_sample_tells_the_settings_apart() -> None:
    settings = [(10, 4), (9, 1), (12, 9), (15, 8), (12, 4), (10, 9)]
    assert len({deflated(bits, level, SAMPLE) for bits, level in settings}) == 6


@pytest.mark.parametrize(("bits", "mem_level"), [(9, 1), (12, 9), (15, 8)])
def test_the_server_compresses_with_its_settings(bits: int, mem_level: int) -> None:
    agreement = deflate.negotiate(
        ["permessage-deflate; client_max_window_bits"], bits, mem_level
    )
    assert agreement is not None
    assert agreement.response.decode() == (
        f"permessage-deflate; server_max_window_bits={bits}; "
        f"client_max_window_bits={bits}"
    )
    frame = agreement.codec(MAX_MESSAGE).encode(SAMPLE)
    assert payload_of(frame) == deflated(bits, mem_level, SAMPLE)


def test_the_defaults_are_a_10_bit_window_and_mem_level_4() -> None:
    agreement = deflate.negotiate(["permessage-deflate"])
    assert agreement is not None
    frame = agreement.codec(MAX_MESSAGE).encode(SAMPLE)
    assert payload_of(frame) == deflated(10, 4, SAMPLE)


@pytest.mark.parametrize(
    ("answer", "bits"),
    [
        ("permessage-deflate; client_max_window_bits=15", 12),
        ("permessage-deflate", 12),
        ("permessage-deflate; client_max_window_bits=9", 9),  # the server's cap
    ],
)
def test_the_client_compresses_with_its_settings(answer: str, bits: int) -> None:
    agreement = deflate.accept([answer], 12, 9)
    assert agreement.client_bits == bits
    frame = agreement.codec(MAX_MESSAGE, client=True).encode(SAMPLE)
    assert payload_of(frame) == deflated(bits, 9, SAMPLE)


@pytest.mark.parametrize("path", PATHS)
def test_the_server_settings_reach_the_wire(
    servers: Callable[..., Server], path: str
) -> None:
    server = servers(
        websocket_compression=True,
        websocket_window_bits=12,
        websocket_mem_level=9,
        max_message=MAX_MESSAGE,
    )
    client = RawDeflateClient(
        server, path, b"permessage-deflate; client_max_window_bits"
    )
    try:
        assert client.extensions == (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        client.send(frames.TEXT, SAMPLE.encode())
        _, payload, inflated = client.recv()
        assert inflated == SAMPLE.encode()
        # NativeEcho's two greetings went through the same compressor first.
        sent_before = (
            ["open websocket websocket /native", "subprotocol None"]
            if path == "/native"
            else []
        )
        assert payload == deflated(12, 9, *sent_before, SAMPLE)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("websocket_window_bits", 8),
        ("websocket_window_bits", 16),
        ("websocket_window_bits", True),
        ("websocket_mem_level", 0),
        ("websocket_mem_level", 10),
        ("websocket_mem_level", 4.0),
    ],
)
def test_settings_zlib_cannot_use_are_refused(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^{option} must be a whole number"):
        from_options({"websocket_compression": True, option: value})


@pytest.mark.parametrize(
    ("option", "value"),
    [("window_bits", 8), ("window_bits", 16), ("mem_level", 0), ("mem_level", 10)],
)
def test_client_settings_zlib_cannot_use_are_refused(
    reactor: Reactor, option: str, value: int
) -> None:
    with pytest.raises(ValueError, match=f"^{option} must be a whole number"):
        reactor.connect("ws://127.0.0.1:9/", handler=Recorder(), **{option: value})


def test_our_client_settings_reach_the_wire(reactor: Reactor, runner: Runner) -> None:
    wire = bytearray()

    class Answerer:
        """Answers the handshake allowing any client window, then keeps
        what the client sends as it comes off the wire."""

        def on_message(self, conn: Any, data: bytes) -> None:
            if b"sec-websocket-key:" not in data.lower():
                wire.extend(data)
                return
            answer = b"permessage-deflate; client_max_window_bits=15"
            conn.write(deflate_answer(data, answer))

    def one_frame() -> bool:
        return len(wire) >= 4 and len(wire) >= 8 + int.from_bytes(wire[2:4], "big")

    listener = reactor.listen(port=0, handler=Answerer)
    recorder = Recorder(echo=False)
    conn = reactor.connect(
        f"ws://127.0.0.1:{listener.port}/",
        handler=recorder,
        compression=True,
        window_bits=11,
        mem_level=2,
    )
    runner.start()
    assert recorder.opened.wait(5), conn.error
    conn.write(SAMPLE)  # after the 101: what is sent before goes out plain
    wait_for(one_frame)
    assert wire[0] == 0xC1  # FIN, compressed, text
    assert payload_of(bytes(wire)) == deflated(11, 2, SAMPLE)


# -------------------------------------------------------------- sockets


def test_a_server_without_compression_never_loads_wsproto() -> None:
    check = "import sys, iodine.http.service; print('wsproto' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("path", PATHS)
def test_compression_is_off_by_default(
    servers: Callable[..., Server], path: str
) -> None:
    server = servers()
    # The websockets client offers permessage-deflate unless told not to.
    with ws(server, path) as client:
        assert client.request is not None
        offered = client.request.headers["sec-websocket-extensions"]
        assert offered.startswith("permessage-deflate")
        assert client.response is not None
        assert "sec-websocket-extensions" not in client.response.headers
        client.send("plain " * 100)
        assert client.recv(timeout=5) == "plain " * 100


@pytest.mark.parametrize("path", PATHS)
def test_compressed_messages_echo_up_to_max_message(
    compressing: Server, path: str
) -> None:
    messages: list[str | bytes] = [
        "compressible " * 100,
        os.urandom(1000),  # incompressible: bigger after deflate
        "",
        b"",
        "é" * (MAX_MESSAGE // 2),  # exactly the limit, in UTF-8
        os.urandom(MAX_MESSAGE),
    ]
    with ws(compressing, path) as client:
        assert client.response is not None
        assert client.response.headers["sec-websocket-extensions"] == (
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"
        )
        for message in messages:
            client.send(message)
            assert client.recv(timeout=5) == message
        client.send(os.urandom(MAX_MESSAGE + 1))
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1009


@pytest.mark.parametrize("path", PATHS)
def test_small_windows_are_honoured(compressing: Server, path: str) -> None:
    # Repeats 1000 bytes apart: a compressor with a window over 512 bytes
    # would refer back to them, which a 9-bit inflater cannot follow.
    chunk = "".join(random.choice("abcdefgh") for _ in range(1000))
    factory = ClientPerMessageDeflateFactory(
        server_max_window_bits=9, client_max_window_bits=9
    )
    with ws(compressing, path, extensions=[factory]) as client:
        assert client.response is not None
        assert client.response.headers["sec-websocket-extensions"] == (
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"
        )
        for _ in range(3):
            client.send(chunk * 8)
            assert client.recv(timeout=5) == chunk * 8


class RawDeflateClient:
    """A hand-driven client that compresses as told, to check what the server
    does with the bytes, not what a library makes of them."""

    def __init__(self, server: Server, path: str, offer: bytes) -> None:
        request, _ = handshake_request(
            path, b"sec-websocket-extensions: " + offer + b"\r\n"
        )
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        self.sock.sendall(request)
        self.head = read_head(self.sock)
        assert self.head.startswith(b"HTTP/1.1 101 "), self.head
        self.extensions = next(
            line.split(b":", 1)[1].strip().decode()
            for line in self.head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-extensions:")
        )
        takeover = "no_context_takeover" not in self.extensions
        self.compressor = zlib.compressobj(wbits=-9) if takeover else None
        self.inflater = zlib.decompressobj(wbits=-15) if takeover else None
        if path == "/native":
            self.recv()
            self.recv()

    def send(self, opcode: int, data: bytes) -> None:
        payload = compress(data, self.compressor)
        self.sock.sendall(client_frame(opcode, payload, rsv1=True))

    def recv(self) -> tuple[int, bytes, bytes]:
        """(first byte, payload on the wire, payload inflated)."""
        first, payload = read_frame(self.sock)
        if not first & 0x40:
            return first, payload, payload
        inflater = self.inflater or zlib.decompressobj(wbits=-15)
        return first, payload, inflater.decompress(payload + _TAIL)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("path", PATHS)
def test_context_takeover_is_used_unless_refused(
    compressing: Server, path: str
) -> None:
    message = bytes(random.choices(b"abcdefghij", k=400))

    # Taken over both ways: the second copy is a back-reference each way.
    client = RawDeflateClient(compressing, path, b"permessage-deflate")
    try:
        client.send(frames.TEXT, message)
        client.send(frames.TEXT, message)
        first, second = client.recv(), client.recv()
        assert first[0] == second[0] == 0xC1
        assert first[2] == second[2] == message
        assert len(second[1]) < len(first[1]) // 4
    finally:
        client.close()

    # Refused both ways: every message stands alone.
    client = RawDeflateClient(
        compressing,
        path,
        b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    )
    try:
        assert client.extensions == (
            "permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=10"
        )
        client.send(frames.BINARY, message)
        client.send(frames.BINARY, message)
        first, second = client.recv(), client.recv()
        assert first[0] == second[0] == 0xC2
        assert first[2] == second[2] == message
        assert first[1] == second[1]
    finally:
        client.close()


@pytest.mark.parametrize("path", PATHS)
def test_control_frames_leave_compressed_messages_whole(
    compressing: Server, path: str
) -> None:
    client = RawDeflateClient(compressing, path, b"permessage-deflate")
    try:
        # A ping between messages, then between two fragments of one.
        client.sock.sendall(client_frame(frames.PING, b"1"))
        client.send(frames.TEXT, b"after a ping")
        payload = compress(b"around a ping", client.compressor)
        client.sock.sendall(
            client_frame(frames.TEXT, payload[:4], rsv1=True, fin=False)
            + client_frame(frames.PING, b"2")
            + client_frame(frames.CONTINUATION, payload[4:])
        )
        # An uncompressed message is allowed too (RSV1 clear).
        client.sock.sendall(client_frame(frames.TEXT, b"plain"))
        # Pongs go out at once; echoes as the application gets to them.
        received = [client.recv()[::2] for _ in range(5)]
        assert [data for first, data in received if first == 0x8A] == [b"1", b"2"]
        assert [frame for frame in received if frame[0] != 0x8A] == [
            (0xC1, b"after a ping"),
            (0xC1, b"around a ping"),
            (0xC1, b"plain"),
        ]
    finally:
        client.close()


@pytest.mark.parametrize("fragments", [False, True])
@pytest.mark.parametrize("path", PATHS)
def test_decompression_bomb_closes_with_1009(
    compressing: Server, path: str, fragments: bool
) -> None:
    # 4 MiB of zeros deflate to about 4 KiB; as 16-byte fragments each one
    # inflates to well under the limit, and only their sum crosses it.
    bomb = compress(b"\0" * (64 * MAX_MESSAGE))
    assert len(bomb) < MAX_MESSAGE // 8
    if fragments:
        pieces = [bomb[i : i + 16] for i in range(0, len(bomb), 16)]
        data = client_frame(frames.BINARY, pieces[0], rsv1=True, fin=False)
        for piece in pieces[1:-1]:
            data += client_frame(frames.CONTINUATION, piece, fin=False)
        data += client_frame(frames.CONTINUATION, pieces[-1])
    else:
        data = client_frame(frames.BINARY, bomb, rsv1=True)
    client = RawDeflateClient(compressing, path, b"permessage-deflate")
    try:
        try:
            client.sock.sendall(data)
        except OSError:
            pass  # closed before all of it was sent: the close frame is read
        first, payload = read_frame(client.sock)
        assert first == 0x88
        assert int.from_bytes(payload[:2], "big") == 1009
    finally:
        client.close()

    # The server is still there.
    with ws(compressing, path) as again:
        again.send("still here")
        assert again.recv(timeout=5) == "still here"


@pytest.mark.parametrize("path", PATHS)
def test_our_client_compresses_with_our_server(
    compressing: Server, path: str, reactor: Reactor, runner: Runner
) -> None:
    script = ["iodine " * 5000, bytes(random.Random(3).randbytes(20_000)), "end"]
    recorder = Recorder(echo=False)
    runner.start()
    conn = reactor.connect(
        f"ws://127.0.0.1:{compressing.port}{path}", handler=recorder, compression=True
    )
    assert recorder.opened.wait(5), conn.error
    answer = dict(conn.response_headers)[b"sec-websocket-extensions"]
    assert answer.startswith(b"permessage-deflate")
    greeting = 2 if path == "/native" else 0  # NativeEcho speaks first
    for message in script:
        conn.write(message)
    wait_for(lambda: len(recorder.messages()) >= greeting + len(script))
    assert recorder.messages()[greeting:] == script
    conn.close()
    assert recorder.close_reason() is CloseReason.LOCAL
