"""`digitd listen ADDRESS`: the client of `digitd run --serve`, for shell pipelines.

Prints the events exactly as received (JSON Lines), or formats them with the very sinks
`digitd run` uses (`--plain`, `--numbers`). Ends when the server closes the connection.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import BinaryIO

from digitd.events import from_dict
from digitd.serve import Address, ServeError, connect, parse_address
from digitd.sinks import NumbersSink, PlainSink


def listen_command(args: argparse.Namespace) -> int:
    addr = parse_address(args.address)
    sock = connect(addr)
    sink = NumbersSink() if args.numbers else PlainSink() if args.plain else None
    with sock, sock.makefile("rb") as f:
        try:
            _copy(f, sink, addr)
        except BrokenPipeError:  # our reader went away (`| head -1`)
            return 0
        except OSError as e:  # e.g. reset by a server that dropped us for not reading
            raise ServeError(f"lost the connection to {addr} ({e.strerror or e})") from None
    return 0


def _copy(f: BinaryIO, sink: NumbersSink | PlainSink | None, addr: Address) -> None:
    out = sys.stdout.buffer
    for raw in f:
        if sink is None:
            out.write(raw)
            out.flush()
            continue
        try:
            event = from_dict(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise ServeError(f"{addr} sent something that is not a digitd event: {raw[:60]!r}") from None
        if event is not None:  # a kind this version does not know: skip it
            sink.handle(event)
