"""``stepline sync [RUN ...|--all] --remote URL``: send a stepline server or a peer tracker what it lacks of
local runs, each run through a transport of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from stepline.errors import ConfigError
from stepline.logbook.reader import Logbook
from stepline.remote.registry import resolve_backends


def run(args: argparse.Namespace) -> int:
    from stepline.remote.shipper import Shipper

    remotes = resolve_backends(args.remote, args.token)
    if len(remotes) != 1:
        raise ConfigError("say where to send the runs, once: --remote http://host:8683 (or STEPLINE_REMOTE), "
                          "or a peer such as trackio+http://host:port")
    backend, url = remotes[0], remotes[0].url
    book = Logbook(args.dir)
    # A job over several nodes: each node's part goes where its run goes, a stepline server (a node's own
    # logbook may hold its part only).
    if args.all:
        views = book.runs(args.project, node_parts=backend.takes_node_parts)
    elif args.runs:
        views = [book.run(name, project=args.project) for name in args.runs]
        if backend.takes_node_parts:
            views = [part for view in views for part in (view, *view.nodes())]
    else:
        raise ConfigError("name the runs to send (ids or names), or pass --all")
    failed = 0
    for view in views:
        shipper = Shipper(view.path, backend.new_transport())  # a transport belongs to one run
        label = f"{view.project}/{view.name} ({view.id})"
        try:
            shipper.ship(_progress_printer(label))
        except Exception as err:  # one run's trouble must not stop the others
            failed += 1
            print(f"\n  {label}: {err}", file=sys.stderr)
            continue
        print(f"\r  {label}: {shipper.records_sent:,} records and {shipper.files_sent} files sent, "
              f"up to date on {url}", file=sys.stderr)
    print(f"{len(views) - failed} of {len(views)} runs synced to {url}")
    return 1 if failed else 0


def _progress_printer(label: str) -> Callable[[int], None]:
    """A progress line on standard error, rewritten in place as batches go out."""
    sent = 0

    def progress(count: int) -> None:
        nonlocal sent
        sent += count
        print(f"\r  {label}: {sent:,} records sent", end="", file=sys.stderr, flush=True)

    return progress


def add_parser(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser("sync", help="send a stepline server what it does not have of local runs",
                              description="Send a stepline server the records and files it lacks of local runs "
                                          "(offline runs, interrupted uploads). Running it again sends nothing.")
    sub.add_argument("runs", nargs="*", help="run ids or names")
    sub.add_argument("--all", action="store_true", help="every run (of --project, if given)")
    sub.add_argument("--remote", help="the server, http://host:8683 (default: $STEPLINE_REMOTE)")
    sub.add_argument("--token", help="an API token (default: $STEPLINE_TOKEN)")
    sub.add_argument("--dir", help="the logbook folder (default: $STEPLINE_DIR or ./stepline_logs)")
    sub.add_argument("--project", help="only runs of this project")
    sub.set_defaults(handler=run)
