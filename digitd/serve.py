"""Publish every event as JSON Lines to any number of local clients (`digitd run --serve`).

A sink like the others, after the classifier and the number grouper: `handle()` only puts
the event on a queue and pokes a wake-up socket, so the pipeline never waits for a client.
One server thread with a selector accepts clients, encodes each event once (the same bytes
as stdout's JSON Lines) and appends it to every client's buffer. A client whose unsent
bytes would pass `serve.client_buffer_kb` is stuck or too slow: it is disconnected and
logged, and nobody else notices. A client that hangs up is forgotten. Late clients get
events from the moment they connect.

Addresses: `unix:/path/to.sock` (created mode 0600, a stale socket file replaced, removed on
exit) or `tcp:HOST:PORT` (loopback only unless `serve.allow_remote`: the stream is neither
authenticated nor encrypted).
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import stat
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from digitd.events import Event

FLUSH_ON_CLOSE_S = 0.2  # at exit, how long reading clients get to receive what is already queued


class ServeError(Exception):
    """An address that cannot be served or reached, with a one-line reason."""


@dataclass(frozen=True)
class Address:
    kind: str  # unix | tcp
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def parse_address(text: str) -> Address:
    """'unix:/run/user/1000/digitd.sock' | 'tcp:127.0.0.1:7700' | 'tcp:[::1]:7700'."""
    t = text.strip()
    if t.startswith("unix:") and len(t) > 5:
        return Address("unix", path=os.path.abspath(os.path.expanduser(t[5:])))
    if t.startswith("tcp:"):
        host, sep, port = t[4:].rpartition(":")
        host = host.strip("[]")
        if sep and host and port.isdigit() and int(port) < 65536:
            return Address("tcp", host=host, port=int(port))
    raise ServeError(f"{text!r} is not an address: use unix:/path/to.sock or tcp:127.0.0.1:PORT")


def parse_addresses(text: str) -> list[Address]:
    """`serve.address`: one or more addresses separated by commas."""
    return [parse_address(a) for a in text.split(",") if a.strip()]


def _resolve(addr: Address) -> list[tuple]:
    try:
        return socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ServeError(f"{addr}: cannot resolve {addr.host!r} ({e.strerror})") from None


def check_allowed(addr: Address, allow_remote: bool) -> None:
    """A TCP address must be loopback unless the config says `serve.allow_remote = true`."""
    if addr.kind != "tcp" or allow_remote:
        return
    for *_, sockaddr in _resolve(addr):
        if not ipaddress.ip_address(sockaddr[0].split("%")[0]).is_loopback:
            raise ServeError(f"{addr} is not a loopback address: events are unauthenticated; "
                             "set serve.allow_remote = true to serve other machines")


def connect(addr: Address, timeout: float = 5.0) -> socket.socket:
    """A connected client socket (blocking), or one line saying why not."""
    try:
        if addr.kind == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(timeout)
                s.connect(addr.path)
            except BaseException:
                s.close()
                raise
        else:
            s = socket.create_connection((addr.host, addr.port), timeout=timeout)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise ServeError(f"nothing is listening at {addr} ({e.strerror.lower()})") from None
    except socket.gaierror as e:
        raise ServeError(f"{addr}: cannot resolve {addr.host!r} ({e.strerror})") from None
    except OSError as e:
        raise ServeError(f"cannot connect to {addr} ({e.strerror or e})") from None
    s.settimeout(None)
    return s


def _listen_unix(addr: Address) -> tuple[socket.socket, tuple[int, int]]:
    path = addr.path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ServeError(f"{addr}: {path} exists and is not a socket; not touching it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            live = True
        except OSError:
            live = False
        finally:
            probe.close()
        if live:
            raise ServeError(f"{addr}: another process is already serving there")
        os.unlink(path)  # stale: left by a process that was killed
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # born 0600: no window in which others could connect
    try:
        s.bind(path)
    except OSError as e:
        s.close()
        raise ServeError(f"{addr}: cannot listen there ({e.strerror or e})") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    st = os.stat(path)
    return s, (st.st_dev, st.st_ino)


def _listen_tcp(addr: Address) -> socket.socket:
    family, kind, proto, _, sockaddr = _resolve(addr)[0]
    s = socket.socket(family, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(sockaddr)
    except OSError as e:
        s.close()
        raise ServeError(f"{addr}: cannot listen there ({e.strerror or e})") from None
    return s


def _log_stderr(msg: str) -> None:
    try:
        print(f"digitd: serve: {msg}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class _Client:
    __slots__ = ("sock", "name", "buf", "writing")

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.buf = bytearray()
        self.writing = False  # registered for EVENT_WRITE


class EventServer:
    """The `--serve` sink. `start()` binds every address (errors are `ServeError`s) and starts
    the server thread; `handle(event)` enqueues; `close()` flushes briefly, disconnects
    everyone and removes the socket files."""

    def __init__(self, addresses: list[Address], buffer_bytes: int,
                 log: Callable[[str], None] | None = None) -> None:
        self.addresses = list(addresses)
        self.limit = int(buffer_bytes)
        self.log = log or _log_stderr
        self.bound: list[Address] = []  # with the real port when tcp:...:0 was asked for
        self.dropped = 0  # clients disconnected for falling behind
        self._listeners: list[socket.socket] = []
        self._unix_files: list[tuple[str, tuple[int, int]]] = []
        self._pending: deque[Event] = deque()
        self._clients: dict[int, _Client] = {}
        self._n_clients = 0
        self._count = threading.Condition()
        self._serial = 0
        self._stopping = False
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread: threading.Thread | None = None

    # -- pipeline side ------------------------------------------------------------------
    def start(self) -> "EventServer":
        try:
            for a in self.addresses:
                if a.kind == "unix":
                    s, ident = _listen_unix(a)
                    self._unix_files.append((a.path, ident))
                    self.bound.append(a)
                else:
                    s = _listen_tcp(a)
                    self.bound.append(Address("tcp", host=a.host, port=s.getsockname()[1]))
                self._listeners.append(s)
                s.listen(64)
                s.setblocking(False)
        except BaseException:
            self._cleanup()
            raise
        self._thread = threading.Thread(target=self._serve, name="serve", daemon=True)
        self._thread.start()
        for a in self.bound:
            self.log(f"serving events on {a}")
        return self

    def handle(self, event: Event) -> None:
        if self._closed:
            return
        self._pending.append(event)
        self._poke()

    def wait_for_clients(self, n: int, timeout: float) -> bool:
        """True once `n` clients are connected (False after `timeout` seconds)."""
        with self._count:
            return self._count.wait_for(lambda: self._n_clients >= n, timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._poke()
        if self._thread is not None:
            self._thread.join(FLUSH_ON_CLOSE_S + 1.0)
        self._cleanup()

    def _poke(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake (or shutting down)

    # -- server thread ------------------------------------------------------------------
    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        for s in self._listeners:
            sel.register(s, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping:
                for key, mask in sel.select():
                    if key.data is None:
                        self._accept(sel, key.fileobj)  # type: ignore[arg-type]
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._client_ready(sel, key.data, mask)
                self._distribute(sel)
            for s in self._listeners:
                sel.unregister(s)  # no new clients while the last events go out
            self._distribute(sel)
            deadline = time.monotonic() + FLUSH_ON_CLOSE_S
            while any(c.buf for c in self._clients.values()) and time.monotonic() < deadline:
                for key, mask in sel.select(max(0.0, deadline - time.monotonic())):
                    if isinstance(key.data, _Client):
                        self._client_ready(sel, key.data, mask)
                    elif key.data == "wake":
                        self._drain_wake()  # else it stays readable and this loop spins
        finally:
            for c in list(self._clients.values()):
                self._forget(sel, c)
            sel.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _accept(self, sel: selectors.BaseSelector, lsock: socket.socket) -> None:
        while True:
            try:
                sock, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. out of file descriptors: keep serving the others
                self.log(f"accept failed: {e}")
                return
            sock.setblocking(False)
            try:  # bound the kernel's share of the client buffer too
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(4096, self.limit))
            except OSError:
                pass
            self._serial += 1
            name = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else f"unix client {self._serial}"
            c = _Client(sock, name)
            self._clients[sock.fileno()] = c
            sel.register(sock, selectors.EVENT_READ, c)
            with self._count:
                self._n_clients = len(self._clients)
                self._count.notify_all()

    def _client_ready(self, sel: selectors.BaseSelector, c: _Client, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = c.sock.recv(4096)  # clients have nothing to say; EOF = gone
            except (BlockingIOError, InterruptedError):
                data = b"-"
            except OSError:
                data = b""
            if not data:
                self._forget(sel, c)
                return
        if mask & selectors.EVENT_WRITE:
            self._send(sel, c)

    def _distribute(self, sel: selectors.BaseSelector) -> None:
        while self._pending:
            line = (self._pending.popleft().to_json() + "\n").encode()
            for c in list(self._clients.values()):
                if c.buf and len(c.buf) + len(line) > self.limit:  # one line always fits
                    self.dropped += 1
                    self.log(f"dropped {c.name}: it stopped reading ({len(c.buf)} bytes unsent)")
                    self._forget(sel, c)
                    continue
                c.buf += line
        for c in list(self._clients.values()):
            if c.buf:
                self._send(sel, c)

    def _send(self, sel: selectors.BaseSelector, c: _Client) -> None:
        try:
            n = c.sock.send(c.buf, socket.MSG_NOSIGNAL)  # never SIGPIPE (the CLI restores its default action)
            del c.buf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._forget(sel, c)
            return
        want = bool(c.buf)
        if want != c.writing:
            c.writing = want
            sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0), c)

    def _forget(self, sel: selectors.BaseSelector, c: _Client) -> None:
        if self._clients.pop(c.sock.fileno(), None) is None:
            return
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.sock.close()
        with self._count:
            self._n_clients = len(self._clients)
            self._count.notify_all()

    def _cleanup(self) -> None:
        for s in self._listeners:
            s.close()
        self._listeners = []
        for path, ident in self._unix_files:
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == ident:  # still ours, not a successor's
                    os.unlink(path)
            except OSError:
                pass
        self._unix_files = []
        for s in (self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass
