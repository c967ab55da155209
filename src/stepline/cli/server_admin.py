"""``stepline server user|token``: the users and API tokens of a stepline server's logbook."""

from __future__ import annotations

import argparse
import getpass
import sys

from stepline.config import logbook_root
from stepline.server.auth import AuthStore


def _auth(args: argparse.Namespace) -> AuthStore:
    return AuthStore(logbook_root(args.dir))


def add_user(args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password:
        password = getpass.getpass(f"password for {args.name}: ")
    _auth(args).add_user(args.name, password)
    print(f"user {args.name} added")
    return 0


def create_token(args: argparse.Namespace) -> int:
    token_id, token = _auth(args).create_token(args.user, args.project or None)
    scope = ", ".join(args.project) if args.project else "every project"
    print(f"token {token_id} for {args.user} ({scope}); it is shown only now:", file=sys.stderr)
    print(token)
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    _auth(args).revoke(args.id)
    print(f"token {args.id} revoked")
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    for token in _auth(args).tokens():
        print(f"{token['id']}  {token['user']}  {', '.join(token['projects'] or ['every project'])}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    server = commands.add_parser("server", help="users and API tokens of a stepline server")
    groups = server.add_subparsers(dest="group", required=True, metavar="user|token")

    def add(group: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help)
        sub.add_argument("--dir", help="the server's logbook folder (default: $STEPLINE_DIR or ./stepline_logs)")
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
