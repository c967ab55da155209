"""``stepline export RUN --format csv|jsonl``: a run's metrics, one row per log call."""

from __future__ import annotations

import argparse
import csv
import sys
from contextlib import nullcontext
from typing import IO

from stepline import events
from stepline.logbook.reader import Logbook

FIXED_COLUMNS = ["step", "epoch", "timestamp"]


def run(args: argparse.Namespace) -> int:
    view = Logbook(args.dir).run(args.run, project=args.project)
    target = open(args.output, "w", newline="") if args.output else nullcontext(sys.stdout)
    with target as out:
        if args.format == "jsonl":
            for record in view.records(events.METRICS):
                out.write(events.encode(record).decode())
        else:
            write_csv(view.metrics(), view.metric_keys(), out)
    return 0


def write_csv(rows: list[dict], keys: list[str], out: IO[str]) -> None:
    """NaN and infinities are written as ``nan``, ``inf`` and ``-inf``, which pandas and numpy read back."""
    writer = csv.DictWriter(out, fieldnames=FIXED_COLUMNS + [k for k in keys if k not in FIXED_COLUMNS],
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
