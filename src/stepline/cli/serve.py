"""``stepline serve [DIR] [--store postgresql://...]``: the dashboard and API over a store of runs, on 127.0.0.1
unless told otherwise."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import webbrowser

from stepline.errors import ConfigError

DEFAULT_PORT = 8683


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from stepline.config import logbook_root

    try:
        import uvicorn

        from stepline.remote.shipper import redacted
        from stepline.server.app import create_app
        from stepline.server.auth import AuthStore
        from stepline.server.stores import open_store
    except ImportError as err:
        raise ConfigError(f"stepline serve needs the server extra ({err.name} is missing): "
                          "pip install 'stepline[server]'") from None
    store = open_store(args.store or str(logbook_root(args.logbook or args.dir)))
    auth = AuthStore(store.accounts())
    require_token = args.require_token or not is_loopback(args.host)
    if require_token and not auth.has_tokens():
        store.close()
        folder = args.logbook or args.dir
        where = f" --store {redacted(args.store)}" if args.store else (f" --dir {folder}" if folder else "")
        raise ConfigError(
            f"--host {args.host} would serve your runs to other machines, so every request needs a token, and "
            f"there is none yet: create one with `stepline server user add NAME{where}` and `stepline server token "
            f"create --user NAME{where}`, or keep the default --host 127.0.0.1 (reach it from elsewhere with an SSH "
            "tunnel: ssh -L 8683:127.0.0.1:8683 this-machine)"
        )
    origins = [o for o in (args.cors_origin or []) if o]
    app = create_app(store, auth=auth, cors_origins=origins, require_token=require_token)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/"
    print(f"stepline is serving {store.describe()} at {url}  (Ctrl-C stops it)", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    print("stepline serve stopped.", file=sys.stderr)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser("serve", help="the web dashboard and HTTP API over a logbook",
                              description="Serve the web dashboard and HTTP API over a logbook, live.")
    sub.add_argument("logbook", nargs="?", help="the logbook folder (default: $STEPLINE_DIR or ./stepline_logs)")
    sub.add_argument("--dir", help=argparse.SUPPRESS)
    sub.add_argument("--store", help="keep the runs, users and tokens in PostgreSQL instead: "
                                     "postgresql://user@host/db; needs stepline[postgres]")
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sub.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    sub.add_argument("--open", action="store_true", help="open the dashboard in a browser")
    sub.add_argument("--cors-origin", action="append", help="allow cross-origin requests from this origin")
    sub.add_argument("--require-token", action="store_true",
                     help="every API request needs a token, on loopback too (always so on other addresses)")
    sub.set_defaults(handler=run)
