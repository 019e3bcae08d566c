"""Reading text files: JSONL (:func:`read_jsonl`), and the files users bring (job YAML, pools,
answers): UTF-8 with or without a
byte-order mark (Excel's "CSV UTF-8" writes one), and bytes that are not UTF-8 are an error
naming the file, the line and the column, never a bare ``'utf-8' codec can't decode``.

Text is decoded with ``errors="surrogateescape"``: a byte that is not UTF-8 becomes a lone
surrogate (U+DC80..U+DCFF), which valid UTF-8 never produces, so each line can be checked
after decoding, where its number is known.
"""

from __future__ import annotations

import io
import json
import re
from typing import Iterable, Iterator

ENCODING = "utf-8-sig"  # UTF-8; a leading byte-order mark is dropped
_ESCAPED = re.compile("[\udc80-\udcff]")


def _error(where: str, line: int, column: int, char: str) -> ValueError:
    byte = ord(char) - 0xDC00
    return ValueError(
        f"{where}:{line}: not valid UTF-8 (byte 0x{byte:02x} at column {column}); "
        "save the file as UTF-8 (in Excel: 'CSV UTF-8')"
    )


def check_lines(lines: Iterable[str], where: str) -> Iterator[str]:
    """Yield ``lines`` (decoded with surrogateescape), raising at the first line holding a
    byte that was not UTF-8."""
    for number, line in enumerate(lines, 1):
        bad = _ESCAPED.search(line)
        if bad:
            raise _error(where, number, bad.start() + 1, bad.group())
        yield line


def decode(data: bytes, where: str) -> str:
    """The text of a whole file; a BOM is dropped, a byte that is not UTF-8 is an error
    naming ``where``, the line and the column."""
    text = data.decode(ENCODING, errors="surrogateescape")
    bad = _ESCAPED.search(text)
    if bad:
        start = bad.start()
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        raise _error(where, line, column, bad.group())
    return text


def text_stream(raw, newline: str | None = None) -> io.TextIOWrapper:
    """A text view of a binary stream, for :func:`check_lines`."""
    return io.TextIOWrapper(raw, encoding=ENCODING, errors="surrogateescape", newline=newline)


def open_text(path, newline: str | None = None):
    """Open a local text file for :func:`check_lines`."""
    return open(path, encoding=ENCODING, errors="surrogateescape", newline=newline)


def read_jsonl(path) -> list[dict]:
    """Read JSONL; a malformed line is an error naming the file and the line."""
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return rows
