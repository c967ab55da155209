"""``stepline server migrate``: move a logbook folder's runs, users and tokens into another store, PostgreSQL
above all.

It is the shipper of ``stepline sync`` with the store itself in place of a server: the same reading of the
logbook, the same per-(run, seq) deduplication, so running it again adds nothing and an interrupted
migration picks up where it stopped.

    migrate(Path("stepline_logs"), PostgresStore("postgresql://stepline@db/stepline"), progress=print_bar)
    migrate_accounts(AuthFile(Path("stepline_logs")), store.accounts())   # tokens keep working: hashes move
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepline.logbook import layout
from stepline.logbook.reader import Logbook
from stepline.logbook.tail import count_lines
from stepline.remote.shipper import Shipper
from stepline.server.auth import Accounts
from stepline.server.stores.base import Store


class StoreTransport:
    """A shipper's transport that writes into a store in this process instead of a server over HTTP."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open_run(self, project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        writer = self.store.open(project, run_id, meta)
        return {"max_seq": writer.max_seq, "files": writer.files()}

    def send_events(self, project: str, run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        writer = self.store.writer(project, run_id)
        writer.append(records)
        return {"max_seq": writer.max_seq}

    def upload(self, project: str, run_id: str, relative: str, path: Path) -> dict[str, Any]:
        return self._copy(self.store.writer(project, run_id).receive_file(relative), path, relative)

    def upload_media(self, project: str, run_id: str, name: str, path: Path) -> dict[str, Any]:
        return self._copy(self.store.writer(project, run_id).receive_media(name), path, f"media/{name}")

    def _copy(self, receiver: Any, path: Path, relative: str) -> dict[str, Any]:
        try:
            with open(path, "rb") as handle:
                shutil.copyfileobj(handle, receiver)
            size = receiver.commit()
        except BaseException:
            receiver.abort()
            raise
        return {"path": relative, "size": size}


def migrate(source: str | Path, target: Store, progress: Callable[[int, int, int, int], None] | None = None,
            ) -> tuple[int, int]:
    """Copy every run of the logbook at ``source`` into ``target``; (records, files) it had to add.
    ``progress(records_done, records_total, runs_done, runs_total)`` is called as batches land."""
    runs = Logbook(source).runs(node_parts=True)  # a job's nodes' parts go with it
    sizes = [_lines_total(view.path) for view in runs]  # records per run, counted once
    total = sum(sizes)
    transport = StoreTransport(target)
    done = added = files = 0
    for number, (view, size) in enumerate(zip(runs, sizes)):
        shipper = Shipper(view.path, transport)

        def landed(count: int, number: int = number) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, total, number, len(runs))

        shipper.ship(landed)
        done += size - shipper.records_sent  # stored by an earlier migration: counted as done
        added += shipper.records_sent
        files += shipper.files_sent
        if progress:
            progress(done, total, number + 1, len(runs))
    return added, files


def migrate_accounts(source: Accounts, target: Accounts) -> tuple[int, int]:
    """Copy the users and tokens ``target`` lacks (hashes as they are, so tokens and passwords keep working);
    (users, tokens) added. A name or token id ``target`` has already is left as it is there."""
    users = sum(target.add_user(name, user) for name in source.users() if (user := source.user(name)))
    present = target.tokens()
    missing = {token_id: token for token_id, token in source.tokens().items() if token_id not in present}
    for token_id, token in missing.items():
        target.add_token(token_id, token)
    return users, len(missing)


def _lines_total(run_path: Path) -> int:
    return sum(count_lines(layout.record_path(run_path, kind)) for kind in layout.RECORD_FILES)
