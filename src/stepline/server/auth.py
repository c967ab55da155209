"""Users and API tokens of a stepline server: the rules here, kept hashed where the server keeps its runs.

    auth = AuthStore(AuthFile(Path("stepline_logs")))    # or AuthStore(store.accounts()) for any store
    auth.add_user("ana")
    token_id, token = auth.create_token("ana", projects=["vision"])   # the token is shown once, never stored
    auth.verify(token)   # TokenInfo(id=..., user="ana", projects=["vision"])

A logbook folder keeps them in ``<logbook>/.stepline/auth.json``; PostgreSQL in its ``users`` and ``tokens``
tables, so every server process on one database sees the same tokens at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from stepline.errors import ConfigError
from stepline.names import check_name, check_project

AUTH_FILE = Path(".stepline") / "auth.json"
TOKEN_PREFIX = "stl_"


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    projects: tuple[str, ...] | None  # None: every project

    def allows(self, project: str) -> bool:
        return self.projects is None or project in self.projects


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header's value, or None."""
    return authorization[7:].strip() or None if authorization.lower().startswith("bearer ") else None


@dataclass(frozen=True)
class Refusal:
    """Why a request may not go on: 401 (no valid token) or 403 (a token for other projects)."""

    status: int
    message: str


class Accounts(Protocol):
    """Where users and token hashes are kept. A user is ``{"created", "password"}`` (a scrypt hash or None),
    a token ``{"user", "hash", "projects", "created"}``."""

    def user(self, name: str) -> dict[str, Any] | None: ...

    def users(self) -> list[str]: ...

    def add_user(self, name: str, user: dict[str, Any]) -> bool:
        """False when ``name`` exists already (nothing changed)."""
        ...

    def token(self, token_id: str) -> dict[str, Any] | None: ...

    def tokens(self) -> dict[str, dict[str, Any]]: ...

    def add_token(self, token_id: str, token: dict[str, Any]) -> None: ...

    def remove_token(self, token_id: str) -> bool: ...


class AuthStore:
    """Users, passwords and tokens, by stepline's rules, over the ``accounts`` a store keeps them in."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        # scrypt takes tens of milliseconds by design, and LMTracker's clients send the password with every
        # push: a password checked once is remembered (keyed with a random per-process key, never in clear)
        # for as long as the user's stored hash is the one it matched.
        self._key = secrets.token_bytes(32)
        self._checked: dict[tuple[str, bytes], str] = {}

    def has_tokens(self) -> bool:
        return bool(self.accounts.tokens())

    def authorise(self, token: str | None, projects: Iterable[str], required: bool) -> TokenInfo | Refusal | None:
        """The one check every route makes, stepline's own and the peers' it serves alike: the token's
        holder, a :class:`Refusal`, or None where no token is required (an open loopback server)."""
        if not required:
            return None
        info = self.verify(token) if token else None
        if info is None:
            what = "an unknown or revoked token" if token else "no token"
            return Refusal(401, f"this server needs a token and got {what}: send a stepline API token (create one "
                                "with `stepline server token create --user NAME`)")
        for project in projects:
            if not info.allows(project):
                return Refusal(403, f"token {info.id} is not for project {project!r}")
        return info

    def users(self) -> list[str]:
        return self.accounts.users()

    def add_user(self, name: str, password: str | None = None) -> None:
        check_name(name, "user name")
        if ":" in name:
            raise ConfigError("a user name cannot contain ':'")
        user = {"created": time.time(), "password": _hash_password(password) if password else None}
        if not self.accounts.add_user(name, user):
            raise ConfigError(f"user {name!r} exists already")

    def check_password(self, name: str, password: str) -> bool:
        user = self.accounts.user(name)
        if user is None or not user["password"]:
            return False
        remembered = (name, hmac.new(self._key, password.encode(), hashlib.sha256).digest())
        if self._checked.get(remembered) == user["password"]:
            return True
        if not _verify_password(password, user["password"]):
            return False
        self._checked[remembered] = user["password"]
        return True

    def create_token(self, user: str, projects: list[str] | None = None) -> tuple[str, str]:
        """``(token id, token)``: the token itself is returned once and only its hash is kept."""
        for project in projects or []:
            check_project(project)
        if self.accounts.user(user) is None:
            raise ConfigError(f"no user {user!r}: add one first with `stepline server user add {user}`")
        token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        self.accounts.add_token(token_id, {"user": user, "hash": _digest(secret), "projects": projects or None,
                                           "created": time.time()})
        return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def revoke(self, token_id: str) -> None:
        if not self.accounts.remove_token(token_id):
            raise ConfigError(f"no token {token_id!r}; `stepline server token list` shows them")

    def tokens(self) -> list[dict[str, Any]]:
        return [{"id": token_id, "user": t["user"], "projects": t["projects"], "created": t["created"]}
                for token_id, t in sorted(self.accounts.tokens().items())]

    def verify(self, token: str) -> TokenInfo | None:
        if not token.startswith(TOKEN_PREFIX) or token.count("_") < 2:
            return None
        token_id, secret = token[len(TOKEN_PREFIX):].split("_", 1)
        entry = self.accounts.token(token_id)
        if entry is None or not hmac.compare_digest(entry["hash"], _digest(secret)):
            return None
        projects = entry.get("projects")
        return TokenInfo(token_id, entry["user"], tuple(projects) if projects else None)


class AuthFile:
    """A logbook folder's accounts, in one private JSON file. It is read again whenever it changed, so tokens
    the CLI makes work on a running server at once."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / AUTH_FILE
        self._data: dict[str, Any] = {"users": {}, "tokens": {}}
        self._mtime = -1.0
        self._lock = threading.Lock()

    def user(self, name: str) -> dict[str, Any] | None:
        return self._load()["users"].get(name)

    def users(self) -> list[str]:
        return sorted(self._load()["users"])

    def add_user(self, name: str, user: dict[str, Any]) -> bool:
        with self._lock:
            data = self._load()
            if name in data["users"]:
                return False
            data["users"][name] = user
            self._save(data)
        return True

    def token(self, token_id: str) -> dict[str, Any] | None:
        return self._load()["tokens"].get(token_id)

    def tokens(self) -> dict[str, dict[str, Any]]:
        return dict(self._load()["tokens"])

    def add_token(self, token_id: str, token: dict[str, Any]) -> None:
        with self._lock:
            data = self._load()
            data["tokens"][token_id] = token
            self._save(data)

    def remove_token(self, token_id: str) -> bool:
        with self._lock:
            data = self._load()
            if data["tokens"].pop(token_id, None) is None:
                return False
            self._save(data)
        return True

    def _load(self) -> dict[str, Any]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return self._data
        if mtime != self._mtime:
            self._data, self._mtime = orjson.loads(self.path.read_bytes()), mtime
        return self._data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # hashes only, still private
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        os.replace(temporary, self.path)
        self._data, self._mtime = data, self.path.stat().st_mtime


def _digest(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough; passwords get scrypt below.
    return hashlib.sha256(secret.encode()).hexdigest()


def _hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${key.hex()}"


def _verify_password(password: str, stored: str) -> bool:
    _, salt, key = stored.split("$")
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate.hex(), key)
