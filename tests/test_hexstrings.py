"""signing.hexstrings: pyHanko's hex strings read in one pass, exactly as pyHanko reads them."""

from __future__ import annotations

import threading
from io import BytesIO

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfReadError

from signing import hexstrings
from signing.hexstrings import fast_hex_strings, read_hex_string

CASES = [
    b"<48656C6C6F>",
    b"<48 65\n6c\r6C\t6F\x00\x0c>",
    b"<4865 6>",  # odd: a last 0 is added
    b"<>",
    b"<FEFF00480069> rest",  # a UTF-16 text string
    b"<DEADBEEF00FF>/Next",
    b"<" + b"0a1B" * 40000 + b">",  # longer than one read
    b"<48 % a comment\n65>",  # pyHanko reads % as a comment
]
BROKEN = [b"<48G5>", b"<4865", b"<48)65>"]


def _pyhanko(data: bytes) -> tuple[object, int]:
    stream = BytesIO(data)
    return hexstrings._pyhanko_reader(stream), stream.tell()


@pytest.mark.parametrize("data", CASES)
def test_the_same_object_and_position_as_pyhanko(data: bytes) -> None:
    expected, position = _pyhanko(data)
    stream = BytesIO(data)
    got = read_hex_string(stream)
    assert type(got) is type(expected) and got == expected
    assert got.original_bytes == expected.original_bytes  # type: ignore[attr-defined]
    assert stream.tell() == position


@pytest.mark.parametrize("data", BROKEN)
def test_a_broken_string_raises_pyhankos_error(data: bytes) -> None:
    with pytest.raises(PdfReadError) as expected:
        _pyhanko(data)
    with pytest.raises(type(expected.value)):
        read_hex_string(BytesIO(data))


def test_only_inside_the_block_and_only_in_its_own_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bare pyHanko elsewhere in the process (bench/, other threads) is untouched.
    calls: list[str] = []

    def counting(stream: BytesIO) -> object:
        calls.append("fast")
        return hexstrings._pyhanko_reader(stream)

    monkeypatch.setattr(hexstrings, "read_hex_string", counting)

    def read() -> None:
        generic.read_object(BytesIO(b"<4142>"), generic.Reference(1, 0))

    with fast_hex_strings():
        read()
        other = threading.Thread(target=read)
        other.start()
        other.join()
    read()
    assert calls == ["fast"]
