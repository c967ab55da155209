"""``stepline list``: every project's runs, one line each."""

from __future__ import annotations

import argparse

from stepline.cli.format import duration, number, table, when
from stepline.cli.summary import main_keys, summarise
from stepline.logbook.reader import Logbook


def run(args: argparse.Namespace) -> int:
    book = Logbook(args.dir)
    views = book.runs(args.project)
    if not views:
        where = f"project {args.project!r} of " if args.project else ""
        print(f"No runs in {where}{book.root}. Start one with: python examples/plain_loop.py")
        return 0
    rows = []
    for view in views:
        summaries, steps = summarise(view)
        shown = ", ".join(f"{k}={number(summaries[k].last)}" for k in main_keys(summaries))
        rows.append([view.project, view.id, view.name, view.status, when(view.started_at),
                     duration(view.duration), str(steps), shown])
    print(table(["PROJECT", "ID", "NAME", "STATUS", "STARTED", "DURATION", "STEPS", "LAST VALUES"], rows))
    return 0
