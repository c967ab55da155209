"""A PostgreSQL store's users and API tokens, in its ``users`` and ``tokens`` tables (see postgres_schema).

    auth = AuthStore(PostgresAccounts(pool))
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool


class PostgresAccounts:
    """Each call reads or writes the database, so a token made or revoked works on every server at once."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def user(self, name: str) -> dict[str, Any] | None:
        with self.pool.connection() as db:
            row = db.execute("SELECT created_at, password FROM users WHERE name = %s", (name,)).fetchone()
        return None if row is None else {"created": row[0], "password": row[1]}

    def users(self) -> list[str]:
        with self.pool.connection() as db:
            return [name for (name,) in db.execute("SELECT name FROM users ORDER BY name")]

    def add_user(self, name: str, user: dict[str, Any]) -> bool:
        with self.pool.connection() as db:
            added = db.execute("INSERT INTO users (name, created_at, password) VALUES (%s, %s, %s) "
                               "ON CONFLICT (name) DO NOTHING", (name, user["created"], user["password"]))
            return added.rowcount == 1

    def token(self, token_id: str) -> dict[str, Any] | None:
        with self.pool.connection() as db:
            row = db.execute("SELECT user_name, hash, projects, created_at FROM tokens WHERE id = %s",
                             (token_id,)).fetchone()
        return None if row is None else _token(*row)

    def tokens(self) -> dict[str, dict[str, Any]]:
        with self.pool.connection() as db:
            rows = db.execute("SELECT id, user_name, hash, projects, created_at FROM tokens").fetchall()
        return {token_id: _token(*rest) for token_id, *rest in rows}

    def add_token(self, token_id: str, token: dict[str, Any]) -> None:
        with self.pool.connection() as db:
            db.execute("INSERT INTO tokens (id, user_name, hash, projects, created_at) VALUES (%s, %s, %s, %s, %s)",
                       (token_id, token["user"], token["hash"], token["projects"], token["created"]))

    def remove_token(self, token_id: str) -> bool:
        with self.pool.connection() as db:
            return db.execute("DELETE FROM tokens WHERE id = %s", (token_id,)).rowcount == 1


def _token(user: str, digest: str, projects: list[str] | None, created: float) -> dict[str, Any]:
    return {"user": user, "hash": digest, "projects": projects, "created": created}
