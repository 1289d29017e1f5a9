"""Reading a whole HTTP request body, Content-Length or chunked.

Why shared: the OpenAI test server and the Hub stand-in both serve real clients that may send
either framing; a handler that reads less than the whole body breaks keep-alive for the next
request on that connection.
"""

from __future__ import annotations

from email.message import Message
from io import BufferedIOBase


def read_body(rfile: BufferedIOBase, headers: Message) -> bytes:
    """The request body: chunked (trailers skipped) or ``Content-Length`` bytes (none: b"")."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline()
    length = int(headers.get("Content-Length") or 0)
    return rfile.read(length) if length > 0 else b""
