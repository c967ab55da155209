"""``stepline`` entry point: parses the command line and dispatches to one module per command.

    stepline list [--dir DIR] [--project P]
    stepline show RUN [--dir DIR] [--project P]
    stepline export RUN --format csv|jsonl [-o FILE]
    stepline serve [DIR] [--host 127.0.0.1] [--port 8683] [--open] [--require-token]
    stepline sync [RUN ...|--all] --remote URL
    stepline reindex [RUN ...|--all]
    stepline server user add NAME | token create --user NAME | token revoke ID | token list
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stepline.cli import export, listing, reindex, serve, server_admin, show, sync
from stepline.errors import SteplineError
from stepline.version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepline", description="Track machine-learning training runs.")
    parser.add_argument("--version", action="version", version=f"stepline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--dir", help="the logbook folder (default: $STEPLINE_DIR or ./stepline_logs)")
        sub.add_argument("--project", help="only this project")
        return sub

    add("list", "a table of projects and their runs").set_defaults(handler=listing.run)
    sub = add("show", "one run: metadata, params, and last / min / max of each metric")
    sub.add_argument("run", help="a run id, or a run name (the latest run of that name)")
    sub.set_defaults(handler=show.run)
    sub = add("export", "a run's metrics as CSV or JSON lines")
    sub.add_argument("run", help="a run id, or a run name (the latest run of that name)")
    sub.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    sub.add_argument("-o", "--output", help="write to this file instead of standard output")
    sub.set_defaults(handler=export.run)
    serve.add_parser(commands)
    sync.add_parser(commands)
    reindex.add_parser(commands)
    server_admin.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SteplineError as err:
        print(f"stepline: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `stepline export RUN | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
