"""``stepline show RUN``: one run's metadata, params, metric summaries and media."""

from __future__ import annotations

import argparse
import json

from stepline.cli.format import duration, number, table, when
from stepline.cli.summary import summarise
from stepline.logbook.reader import Logbook


def run(args: argparse.Namespace) -> int:
    view = Logbook(args.dir).run(args.run, project=args.project)
    meta = view.meta
    print(f"run {view.id}  {view.project}/{view.name}")
    facts = [
        ("status", view.status),
        ("started", when(view.started_at)),
        ("ended", when(view.ended_at)),
        ("duration", duration(view.duration)),
        ("host", f"{meta.get('host')} (pid {meta.get('pid')})"),
        ("command", " ".join(meta.get("command") or [])),
        ("git commit", meta.get("git_commit") or "-"),
        ("tags", ", ".join(view.tags) or "-"),
        ("notes", view.notes or "-"),
        ("folder", str(view.path)),
    ]
    for label, value in facts:
        print(f"  {label + ':':<12}{value}")
    error = view.error
    if error:
        print(f"  {'error:':<12}{error.get('type') or ''}: {error.get('message')}")
    params = view.params()
    print("\nparams:")
    # json, not orjson: it prints NaN and Infinity as such rather than as null.
    print(json.dumps(params, indent=2, sort_keys=True, default=str) if params else "  (none)")
    if view.summary:
        print("\nsummary:")
        for key, value in view.summary.items():
            print(f"  {key + ':':<28}{number(value)}")
    summaries, records = summarise(view)
    print(f"\nmetrics ({records} log calls):")
    if summaries:
        rows = [[key, str(s.count), number(s.last), str(s.last_step), number(s.min), str(s.min_step),
                 number(s.max), str(s.max_step)] for key, s in summaries.items()]
        print(table(["KEY", "POINTS", "LAST", "AT STEP", "MIN", "AT STEP", "MAX", "AT STEP"], rows))
    else:
        print("  (none)")
    media = view.media()
    if media:
        print("\nmedia:")
        kept: dict[str, list[dict]] = {}
        for record in media:
            kept.setdefault(record["key"], []).append(record)
        rows = [[key, records[0]["kind"], str(len(records)), str(sum(len(r["items"]) for r in records)),
                 f"{records[0]['step']}-{records[-1]['step']}"] for key, records in kept.items()]
        print(table(["KEY", "KIND", "LOGGED", "ITEMS", "STEPS"], rows))
    problems = {k: v for k, v in view.problems.items() if v}
    if problems:
        print(f"\nskipped while reading: {problems}")
    return 0
