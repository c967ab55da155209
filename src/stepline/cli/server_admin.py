"""``stepline server user|token|migrate``: a stepline server's users and API tokens, and moving its runs into
PostgreSQL."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from stepline.config import logbook_root
from stepline.server.auth import AuthFile, AuthStore


@contextmanager
def _auth(args: argparse.Namespace) -> Iterator[AuthStore]:
    """The users and tokens of the server's store: ``--store`` (PostgreSQL) or the ``--dir`` logbook folder."""
    if not args.store:
        yield AuthStore(AuthFile(logbook_root(args.dir)))
        return
    from stepline.server.stores import open_store

    store = open_store(args.store)
    try:
        yield AuthStore(store.accounts())
    finally:
        store.close()


def add_user(args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password:
        password = getpass.getpass(f"password for {args.name}: ")
    with _auth(args) as auth:
        auth.add_user(args.name, password)
    print(f"user {args.name} added")
    return 0


def create_token(args: argparse.Namespace) -> int:
    with _auth(args) as auth:
        token_id, token = auth.create_token(args.user, args.project or None)
    scope = ", ".join(args.project) if args.project else "every project"
    print(f"token {token_id} for {args.user} ({scope}); it is shown only now:", file=sys.stderr)
    print(token)
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    with _auth(args) as auth:
        auth.revoke(args.id)
    print(f"token {args.id} revoked")
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    with _auth(args) as auth:
        tokens = auth.tokens()
    for token in tokens:
        print(f"{token['id']}  {token['user']}  {', '.join(token['projects'] or ['every project'])}")
    return 0


def migrate_runs(args: argparse.Namespace) -> int:
    from stepline.errors import ConfigError

    try:
        from stepline.server.migrate import migrate, migrate_accounts
        from stepline.server.stores import open_store
    except ImportError as err:
        raise ConfigError(f"stepline server migrate needs the server extra ({err.name} is missing): "
                          "pip install 'stepline[server,postgres]'") from None
    source = logbook_root(args.source)
    if not source.is_dir():
        raise ConfigError(f"--from {args.source}: no such logbook folder")
    target = open_store(args.to)
    try:
        added, files = migrate(source, target, _progress_bar)
        users, tokens = migrate_accounts(AuthFile(source), target.accounts())
    finally:
        target.close()
    print(f"\n{added:,} records, {files} files, {users} users and {tokens} tokens added to {target.describe()}, "
          "which is now up to date", file=sys.stderr)
    return 0


def _progress_bar(done: int, total: int, runs_done: int, runs_total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    percent = 100 * done // total if total else 100
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {percent:3d}%  {done:,}/{total:,} records  "
          f"{runs_done}/{runs_total} runs", end="", file=sys.stderr, flush=True)


def add_parser(commands: argparse._SubParsersAction) -> None:
    server = commands.add_parser("server", help="users and API tokens of a stepline server; migrate its runs")
    groups = server.add_subparsers(dest="group", required=True, metavar="user|token|migrate")

    def add(group: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help)
        sub.add_argument("--dir", help="the server's logbook folder (default: $STEPLINE_DIR or ./stepline_logs)")
        sub.add_argument("--store", help="the server's PostgreSQL store instead: postgresql://user@host/db")
        return sub

    users = groups.add_parser("user", help="users").add_subparsers(dest="action", required=True)
    sub = add(users, "add", "add a user")
    sub.add_argument("name")
    sub.add_argument("--password", action="store_true", help="ask for a password (LMTracker-style clients)")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.set_defaults(handler=add_user)

    tokens = groups.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    sub = add(tokens, "create", "create a token; it is printed once, only its hash is kept")
    sub.add_argument("--user", required=True)
    sub.add_argument("--project", action="append", help="limit the token to this project (repeatable)")
    sub.set_defaults(handler=create_token)
    sub = add(tokens, "revoke", "revoke a token")
    sub.add_argument("id")
    sub.set_defaults(handler=revoke_token)
    add(tokens, "list", "list tokens (ids, users, projects; never the tokens)").set_defaults(handler=list_tokens)

    sub = groups.add_parser("migrate", help="copy a logbook folder's runs, users and tokens into PostgreSQL (safe "
                                            "to run again)",
                            description="Copy every run, user and token of a logbook folder into another store, "
                                        "such as PostgreSQL. "
                                        "Records already there are skipped, so it can be run again, or after an "
                                        "interruption, without doubling anything.")
    sub.add_argument("--from", dest="source", required=True, help="the logbook folder")
    sub.add_argument("--to", required=True, help="the store: postgresql://user@host/db")
    sub.set_defaults(handler=migrate_runs)
