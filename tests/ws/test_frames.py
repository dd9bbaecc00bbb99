"""The frame codec, checked against wsproto's framing as the reference."""

from __future__ import annotations

from typing import Any

import pytest
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from iodine.http.websocket import frames
from iodine.http.websocket.frames import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    Decoder,
    ProtocolError,
)

MASK = b"\x01\x02\x03\x04"
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def server_decoder(max_message: int = 1 << 24) -> Decoder:
    return Decoder(client=False, max_message=max_message)


def client_decoder(max_message: int = 1 << 24) -> Decoder:
    return Decoder(client=True, max_message=max_message)


def wsproto_messages(fp: FrameProtocol, data: bytes) -> list[tuple[Opcode, Any]]:
    """Whole messages and control frames wsproto reads from ``data``."""
    fp.receive_bytes(data)
    out: list[tuple[Opcode, Any]] = []
    parts: list[Any] = []
    kind = Opcode.TEXT
    for frame in fp.received_frames():
        if frame.opcode in (Opcode.PING, Opcode.PONG, Opcode.CLOSE):
            out.append((frame.opcode, frame.payload))
            continue
        if frame.opcode is not Opcode.CONTINUATION:
            kind = frame.opcode
        parts.append(frame.payload)
        if frame.message_finished:
            joiner = "" if kind is Opcode.TEXT else b""
            out.append((kind, joiner.join(parts)))
            parts = []
    return out


def byte_by_byte(decoder: Decoder, data: bytes) -> list[frames.Event]:
    events: list[frames.Event] = []
    for i in range(len(data)):
        events += decoder.receive(data[i : i + 1])
    return events


# ----------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", SIZES)
def test_wsproto_client_frames_decode_on_the_server_side(size: int) -> None:
    client = FrameProtocol(client=True, extensions=[])
    text = "é" * (size // 2) + "a" * (size % 2)
    data = bytes(client.send_data(text)) + bytes(client.send_data(b"x" * size))
    assert server_decoder().receive(data) == [(TEXT, text), (BINARY, b"x" * size)]


@pytest.mark.parametrize("size", SIZES)
def test_server_frames_decode_identically_in_wsproto(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    data = frames.encode(BINARY, payload) + frames.encode(TEXT, b"t" * size)
    got = wsproto_messages(FrameProtocol(client=True, extensions=[]), data)
    assert got == [(Opcode.BINARY, payload), (Opcode.TEXT, "t" * size)]


@pytest.mark.parametrize("size", SIZES)
def test_masked_client_frames_decode_identically_in_wsproto(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    data = frames.encode(BINARY, payload, mask=frames.new_mask())
    got = wsproto_messages(FrameProtocol(client=False, extensions=[]), data)
    assert got == [(Opcode.BINARY, payload)]
    assert server_decoder().receive(data) == [(BINARY, payload)]


@pytest.mark.parametrize("size", SIZES)
def test_length_encodings_match_wsproto_byte_for_byte(size: int) -> None:
    server = FrameProtocol(client=False, extensions=[])
    assert frames.encode(BINARY, b"a" * size) == bytes(server.send_data(b"a" * size))


def test_unmask_is_its_own_inverse_and_matches_bytewise_xor() -> None:
    payload = bytes(range(256)) * 3 + b"tail"
    masked = frames.unmask(payload, MASK)
    assert masked == bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    assert frames.unmask(masked, MASK) == payload
    assert frames.unmask(b"", MASK) == b""


def test_wsproto_server_frames_decode_on_the_client_side() -> None:
    server = FrameProtocol(client=False, extensions=[])
    data = (
        bytes(server.send_data("hello"))
        + bytes(server.ping(b"p"))
        + bytes(server.close(1001, "bye"))
    )
    assert client_decoder().receive(data) == [
        (TEXT, "hello"),
        (PING, b"p"),
        (CLOSE, (1001, "bye")),
    ]


def test_fast_path_and_byte_by_byte_decoding_agree() -> None:
    client = FrameProtocol(client=True, extensions=[])
    one = bytes(client.send_data("small"))
    assert server_decoder().receive(one) == [(TEXT, "small")]
    assert byte_by_byte(server_decoder(), one) == [(TEXT, "small")]
    many = one + bytes(client.send_data(b"\x00" * 300)) + bytes(client.ping(b"!"))
    expected = [(TEXT, "small"), (BINARY, b"\x00" * 300), (PING, b"!")]
    assert server_decoder().receive(many) == expected
    assert byte_by_byte(server_decoder(), many) == expected


# --------------------------------------------------------- fragmentation


def test_fragmented_messages_are_joined_with_control_frames_interleaved() -> None:
    client = FrameProtocol(client=True, extensions=[])
    data = (
        bytes(client.send_data("Hel", fin=False))
        + bytes(client.ping(b"1"))
        + bytes(client.send_data("lo ", fin=False))
        + bytes(client.send_data("", fin=False))
        + bytes(client.pong(b"2"))
        + bytes(client.send_data("wörld", fin=True))
        + bytes(client.send_data(b"ab", fin=False))
        + bytes(client.send_data(b"cd", fin=True))
    )
    expected = [
        (PING, b"1"),
        (PONG, b"2"),
        (TEXT, "Hello wörld"),
        (BINARY, b"abcd"),
    ]
    assert server_decoder().receive(data) == expected
    assert byte_by_byte(server_decoder(), data) == expected


def test_utf8_split_across_fragments_is_valid() -> None:
    encoded = "€".encode()
    data = frames.encode(TEXT, encoded[:1], fin=False, mask=MASK) + frames.encode(
        frames.CONTINUATION, encoded[1:], mask=MASK
    )
    assert server_decoder().receive(data) == [(TEXT, "€")]


def test_our_fragments_decode_in_wsproto() -> None:
    data = frames.encode(TEXT, b"ab", fin=False) + frames.encode(
        frames.CONTINUATION, b"cd"
    )
    got = wsproto_messages(FrameProtocol(client=True, extensions=[]), data)
    assert got == [(Opcode.TEXT, "abcd")]


def test_close_frames_parse_code_and_reason() -> None:
    client = FrameProtocol(client=True, extensions=[])
    assert server_decoder().receive(bytes(client.close(4001, "ça"))) == [
        (CLOSE, (4001, "ça"))
    ]
    empty = frames.encode(CLOSE, b"", mask=MASK)
    assert server_decoder().receive(empty) == [(CLOSE, (1005, ""))]


def test_nothing_is_decoded_after_a_close_frame() -> None:
    decoder = server_decoder()
    data = frames.encode(CLOSE, b"\x03\xe8", mask=MASK) + frames.encode(
        TEXT, b"late", mask=MASK
    )
    assert decoder.receive(data) == [(CLOSE, (1000, ""))]
    assert decoder.receive(frames.encode(TEXT, b"later", mask=MASK)) == []


# ------------------------------------------------------------------ errors


def header(first: int, length: int, *, masked: bool = True) -> bytes:
    """A frame header; lengths above 125 use the 16- or 64-bit forms."""
    mask_bit = 0x80 if masked else 0
    if length < 126:
        out = bytes((first, mask_bit | length))
    elif length < 0x10000:
        out = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        out = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    return out + (MASK if masked else b"")


def masked_frame(first: int, payload: bytes) -> bytes:
    return header(first, len(payload)) + frames.unmask(payload, MASK)


BAD_FRAMES = {
    "rsv1": (masked_frame(0xC1, b"a"), 1002),
    "rsv2": (masked_frame(0xA1, b"a"), 1002),
    "rsv3": (masked_frame(0x91, b"a"), 1002),
    "opcode 3": (masked_frame(0x83, b""), 1002),
    "opcode 7": (masked_frame(0x87, b""), 1002),
    "opcode 11": (masked_frame(0x8B, b""), 1002),
    "opcode 15": (masked_frame(0x8F, b""), 1002),
    "fragmented ping": (masked_frame(0x09, b""), 1002),
    "ping over 125": (masked_frame(0x89, b"p" * 126), 1002),
    "continuation first": (masked_frame(0x80, b"a"), 1002),
    "text inside fragments": (
        masked_frame(0x01, b"a") + masked_frame(0x81, b"b"),
        1002,
    ),
    "unmasked from client": (header(0x81, 1, masked=False) + b"a", 1002),
    "64-bit length with the top bit": (
        bytes((0x82, 0xFF)) + (1 << 63).to_bytes(8, "big") + MASK,
        1002,
    ),
    "invalid utf-8": (masked_frame(0x81, b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80"), 1007),
    "invalid utf-8 in a fragment": (
        masked_frame(0x01, b"ok") + masked_frame(0x80, b"\xff"),
        1007,
    ),
    "close with one byte": (masked_frame(0x88, b"\x03"), 1002),
    "close code 999": (masked_frame(0x88, (999).to_bytes(2, "big")), 1002),
    "close code 1005": (masked_frame(0x88, (1005).to_bytes(2, "big")), 1002),
    "close code 1006": (masked_frame(0x88, (1006).to_bytes(2, "big")), 1002),
    "close code 1016": (masked_frame(0x88, (1016).to_bytes(2, "big")), 1002),
    "close code 2999": (masked_frame(0x88, (2999).to_bytes(2, "big")), 1002),
    "close code 5000": (masked_frame(0x88, (5000).to_bytes(2, "big")), 1002),
    "close reason not utf-8": (masked_frame(0x88, b"\x03\xe8\xff"), 1007),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_protocol_errors_carry_the_close_code(name: str) -> None:
    data, code = BAD_FRAMES[name]
    with pytest.raises(ProtocolError) as caught:
        server_decoder().receive(data)
    assert caught.value.code == code
    # The same bytes, one at a time, fail the same way.
    with pytest.raises(ProtocolError) as caught:
        byte_by_byte(server_decoder(), data)
    assert caught.value.code == code


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_wsproto_agrees_on_the_close_code(name: str) -> None:
    data, code = BAD_FRAMES[name]
    wsproto_server = FrameProtocol(client=False, extensions=[])
    with pytest.raises(ParseFailed) as caught:
        wsproto_messages(wsproto_server, data)
    assert caught.value.code == code


def test_a_masked_frame_from_the_server_fails_the_client() -> None:
    with pytest.raises(ProtocolError) as caught:
        client_decoder().receive(masked_frame(0x81, b"a"))
    assert caught.value.code == 1002


def test_message_too_big_fails_on_the_header_alone() -> None:
    decoder = server_decoder(max_message=1000)
    with pytest.raises(ProtocolError) as caught:
        decoder.receive(header(0x82, 1 << 20))  # no payload yet
    assert caught.value.code == 1009


def test_message_too_big_counts_every_fragment() -> None:
    decoder = server_decoder(max_message=10)
    assert decoder.receive(masked_frame(0x02, b"123456")) == []
    with pytest.raises(ProtocolError) as caught:
        decoder.receive(masked_frame(0x80, b"12345"))
    assert caught.value.code == 1009


def test_message_at_the_limit_passes_on_the_fast_path_too() -> None:
    assert server_decoder(max_message=5).receive(masked_frame(0x81, b"12345")) == [
        (TEXT, "12345")
    ]
    with pytest.raises(ProtocolError) as caught:
        server_decoder(max_message=4).receive(masked_frame(0x81, b"12345"))
    assert caught.value.code == 1009


def test_events_before_an_error_are_kept() -> None:
    data = masked_frame(0x81, b"first") + masked_frame(0x83, b"")
    with pytest.raises(ProtocolError) as caught:
        server_decoder().receive(data)
    assert caught.value.events == [(TEXT, "first")]


def test_close_payload_refuses_what_may_not_be_sent() -> None:
    assert frames.close_payload(1000, "ok") == b"\x03\xe8ok"
    assert frames.close_payload(None) == b""
    for code in (999, 1005, 1006, 1015, 2000, 5000):
        with pytest.raises(ValueError, match="may not be sent"):
            frames.close_payload(code)
    with pytest.raises(ValueError, match="123 bytes"):
        frames.close_payload(1000, "x" * 124)
