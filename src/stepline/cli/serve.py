"""``stepline serve [DIR] [--store postgresql://...]``: the dashboard and API over a store of runs, on 127.0.0.1
unless told otherwise."""

from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import os
import socket
import sys
import webbrowser
from pathlib import Path

from stepline.errors import ConfigError
from stepline.urls import LOOPBACK_NAMES, is_loopback, redacted

DEFAULT_PORT = 8683




def run(args: argparse.Namespace) -> int:
    from stepline.config import logbook_root

    try:
        import uvicorn

        from stepline.server.app import create_app
        from stepline.server.auth import AuthStore
        from stepline.server.stores import open_store
    except ImportError as err:
        raise ConfigError(f"stepline serve needs the server extra ({err.name} is missing): "
                          "pip install 'stepline[server]'") from None
    store = open_store(args.store or str(logbook_root(args.logbook or args.dir)), cache_mb=args.cache_mb)
    auth = AuthStore(store.accounts())
    require_token = args.require_token or not is_loopback(args.host)
    if require_token and not auth.has_tokens():
        store.close()
        folder = args.logbook or args.dir
        where = f" --store {redacted(args.store)}" if args.store else (f" --dir {folder}" if folder else "")
        create = (f"create one with `stepline server user add NAME{where}` and `stepline server token create "
                  f"--user NAME{where}`")
        if not is_loopback(args.host):
            raise ConfigError(
                f"--host {args.host} would serve your runs to other machines, so every request needs a token, "
                f"and there is none yet: {create}, or keep the default --host 127.0.0.1 (reach it from elsewhere "
                "with an SSH tunnel: ssh -L 8683:127.0.0.1:8683 this-machine)")
        raise ConfigError(f"--require-token: every request needs a token, and there is none yet: {create}, or "
                          "drop --require-token (on 127.0.0.1 only this machine can reach the server)")
    try:
        listener = _listen(args.host, args.port)
    except ConfigError:
        store.close()
        raise
    origins = [o for o in (args.cors_origin or []) if o]
    app = create_app(store, auth=auth, cors_origins=origins, require_token=require_token,
                     allowed_hosts=(*LOOPBACK_NAMES, args.host) if is_loopback(args.host) else None)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/"
    print(f"stepline is serving {store.describe()} at {url}  (Ctrl-C stops it)", flush=True)
    if args.open:
        webbrowser.open(url)
    tune_garbage_collector()
    tune_allocator()
    try:
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
        server.run(sockets=[listener])  # the socket bound above: the address printed is the one served
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        store.close()
    print("stepline serve stopped.", file=sys.stderr)
    return 0


def tune_garbage_collector() -> None:
    """Set this server process's garbage collector for ingest. A batch of records parses into some 100,000
    objects, alive until stored; at Python's default thresholds the collector scans them, and everything
    the server had loaded, over and over (half of ingest's time at 20,000 records a batch). What exists now
    (the app, its modules) is frozen out of collections, and young collections come every 50,000
    allocations rather than 700."""
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


# glibc's mallopt parameters (malloc.h), and what this server sets them to.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT_FREE_BYTES = 128 << 20
HEAP_BLOCK_BYTES = 32 << 20  # glibc's largest: a body up to this size is taken from the heap


def tune_allocator() -> bool:
    """Let this server process reuse the memory of one request's body for the next. glibc gives each block over
    its mapping threshold (a shipper's 4 MB batch, and uvicorn's and Starlette's copies of it) pages of its own
    and hands them back when freed, so every batch had the kernel zero thousands of pages anew: an eighth of the
    server's CPU on ingest. Here blocks up to 32 MB come from the heap, and up to 128 MB of freed heap is kept
    for the next request. Whether glibc's malloc was found and tuned (elsewhere: nothing to tune)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES))


def megabytes(text: str) -> int:
    """``--cache-mb``, checked: a positive whole number."""
    if not text.strip().isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use a whole number of MB, 1 or more")
    return int(text)


def port_number(text: str) -> int:
    """``--port``, checked: a whole number from 1 to 65535."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use a number from 1 to 65535")
    return int(text)


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening, or a ConfigError that says who holds the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as err:
        listener.close()
        if err.errno == errno.EADDRINUSE:
            pid = _listening_pid(port)
            holder = f" (by pid {pid})" if pid else ""
            raise ConfigError(f"port {port} is in use{holder}; use --port to pick another") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror}; check --host and --port") from None
    listener.set_inheritable(True)
    return listener


def _listening_pid(port: int) -> int | None:
    """The pid of the process listening on ``port``, read from /proc (Linux); None where it cannot be told."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc") if inodes else ()):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    return None


def add_parser(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser("serve", help="the web dashboard and HTTP API over a logbook",
                              description="Serve the web dashboard and HTTP API over a logbook, live.")
    sub.add_argument("logbook", nargs="?", help="the logbook folder (default: $STEPLINE_DIR or ./stepline_logs)")
    sub.add_argument("--dir", help=argparse.SUPPRESS)
    sub.add_argument("--store", help="keep the runs, users and tokens in PostgreSQL instead: "
                                     "postgresql://user@host/db; needs stepline[postgres]")
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sub.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    sub.add_argument("--open", action="store_true", help="open the dashboard in a browser")
    sub.add_argument("--cors-origin", action="append", help="allow cross-origin requests from this origin")
    sub.add_argument("--require-token", action="store_true",
                     help="every API request needs a token, on loopback too (always so on other addresses)")
    sub.add_argument("--cache-mb", type=megabytes, default=None,
                     help="memory for runs and points kept between requests (default $STEPLINE_SERVER_CACHE_MB "
                          "or 256)")
    sub.set_defaults(handler=run)
