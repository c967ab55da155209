"""The PostgreSQL store's files: each kept as rows of 1 MiB chunks, an upload replaced in one transaction.

    receiver = FileReceiver(pool, run_pk, "checkpoints/last.pt")
    receiver.write(chunk); receiver.commit()
"""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

CHUNK_BYTES = 1 << 20  # a file is kept as rows of this many bytes


class FileReceiver:
    """An upload written in one transaction: the old file stays readable until the new one is whole."""

    def __init__(self, pool: ConnectionPool, run: int, path: str) -> None:
        self.pool, self.run, self.path = pool, run, path
        self.db = pool.getconn()
        self.db.execute("DELETE FROM files WHERE run = %s AND path = %s", (run, path))
        self.db.execute("INSERT INTO files (run, path, size, chunks) VALUES (%s, %s, 0, 0)", (run, path))
        self.buffer = bytearray()
        self.size = 0
        self.chunks = 0

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        self.size += len(chunk)
        while len(self.buffer) >= CHUNK_BYTES:
            self._store(bytes(self.buffer[:CHUNK_BYTES]))
            del self.buffer[:CHUNK_BYTES]

    def commit(self) -> int:
        try:
            if self.buffer or not self.chunks:
                self._store(bytes(self.buffer))
            self.db.execute("UPDATE files SET size = %s, chunks = %s WHERE run = %s AND path = %s",
                            (self.size, self.chunks, self.run, self.path))
            self.db.commit()
        finally:
            self.pool.putconn(self.db)
        return self.size

    def abort(self) -> None:
        self.db.rollback()
        self.pool.putconn(self.db)

    def _store(self, data: bytes) -> None:
        self.db.execute("INSERT INTO file_chunks (run, path, n, data) VALUES (%s, %s, %s, %s)",
                        (self.run, self.path, self.chunks, data))
        self.chunks += 1


# Media files share the files table under this prefix: a user's file name never holds ':' (names.py), so the two
# never meet, and the run's files list leaves them out.
MEDIA_PREFIX = ":media/"


def files_of(db: psycopg.Connection, run: int) -> dict[str, int]:
    rows = db.execute("SELECT path, size FROM files WHERE run = %s AND path NOT LIKE ':%%' ORDER BY path",
                      (run,)).fetchall()
    return dict(rows)
