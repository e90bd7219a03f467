"""A container's output arrives in one request as the engine's framed stream: split back into stdout
and stderr exactly, whatever the interleaving, and keep what arrived of a cut-off frame."""

from __future__ import annotations

from dockyard.engine import demultiplex


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_interleaved_frames_are_split_by_stream_in_order() -> None:
    data = frame(1, b'{"a": ') + frame(2, b"warning\n") + frame(1, b"1}\n") + frame(2, b"more\n")
    assert demultiplex(data) == (b'{"a": 1}\n', b"warning\nmore\n")


def test_empty_output_and_empty_frames() -> None:
    assert demultiplex(b"") == (b"", b"")
    assert demultiplex(frame(1, b"") + frame(2, b"")) == (b"", b"")


def test_a_frame_larger_than_a_byte_of_size_is_read_whole() -> None:
    big = bytes(range(256)) * 300  # 76,800 bytes: the size needs three of the header's four bytes
    assert demultiplex(frame(1, big)) == (big, b"")


def test_a_cut_off_last_frame_keeps_what_arrived() -> None:
    data = frame(1, b"complete\n") + frame(2, b"partial line")[:-4]
    assert demultiplex(data) == (b"complete\n", b"partial ")
