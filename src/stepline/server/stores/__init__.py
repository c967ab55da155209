"""The stores a stepline server keeps its runs in: a logbook folder (the default) or PostgreSQL.

    store = open_store("stepline_logs")
    store = open_store("postgresql://stepline@db.internal/stepline")
"""

from __future__ import annotations

from stepline.errors import ConfigError
from stepline.server.stores.base import RunWriter, SeriesPoints, Store
from stepline.server.stores.logbook import LogbookStore

__all__ = ["LogbookStore", "RunWriter", "SeriesPoints", "Store", "open_store"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(where: str, *, cache_mb: int | None = None) -> Store:
    """A logbook folder's path, or a PostgreSQL URL (needs the ``postgres`` extra). ``cache_mb`` bounds what a
    logbook store keeps in memory (PostgreSQL keeps its own)."""
    if not where.startswith(POSTGRES_SCHEMES):
        return LogbookStore(where, cache_mb=cache_mb)
    try:
        from stepline.server.stores.postgres import PostgresStore
    except ImportError as err:
        raise ConfigError(f"a PostgreSQL store needs the postgres extra ({err.name} is missing): "
                          "pip install 'stepline[postgres]'") from None
    return PostgresStore(where)
