"""``stepline reindex [RUN ...|--all]``: build runs' metrics indexes anew from their metrics.jsonl.

Never needed for correctness (readers rebuild an index that does not match its file, and write a large missing
part back); useful after copying a logbook from an older stepline, to pay the rebuild once, up front.
"""

from __future__ import annotations

import argparse
import time

from stepline.errors import ConfigError
from stepline.logbook.reader import Logbook


def add_parser(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser("reindex", help="build runs' metrics indexes anew from their metrics.jsonl",
                              description=__doc__.splitlines()[0])
    sub.add_argument("runs", nargs="*", metavar="RUN", help="run ids or names")
    sub.add_argument("--all", action="store_true", help="every run (of --project, if given)")
    sub.add_argument("--dir", help="the logbook folder (default: $STEPLINE_DIR or ./stepline_logs)")
    sub.add_argument("--project", help="only this project")
    sub.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from stepline.logbook.index import rebuild_index  # numpy

    if bool(args.runs) == args.all:
        raise ConfigError("name the runs to reindex, or give --all")
    book = Logbook(args.dir)
    views = book.runs(args.project) if args.all else [book.run(name, project=args.project) for name in args.runs]
    for view in views:
        started = time.perf_counter()
        index = rebuild_index(view.path)
        if index is None:
            print(f"{view.project}/{view.id}: skipped, its writer is running and keeps its index (or its folder "
                  "cannot be written)")
            continue
        points = sum(column.count for column in index.columns.values())
        print(f"{view.project}/{view.id}: {index.records} records, {points} points, {len(index.columns)} metrics "
              f"in {time.perf_counter() - started:.1f} s")
    return 0
