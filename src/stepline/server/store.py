"""The server's view of a logbook folder: runs kept in memory and refreshed from what was appended.

    store = LogbookStore("stepline_logs")
    store.runs("mnist")            # every run's overview, current as of this call
    store.run("mnist", "a1b2c3d4") # one run's RunCache
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from stepline.config import heartbeat_timeout as configured_heartbeat_timeout
from stepline.config import logbook_root
from stepline.errors import ConfigError, RunNotFoundError
from stepline.logbook import layout
from stepline.logbook.reader import derived_status
from stepline.names import check_name
from stepline.server.cache import RunCache


class LogbookStore:
    """Runs of one logbook folder, read through per-run caches that only ever read appended bytes."""

    def __init__(self, root: str | Path | None = None, *, heartbeat_timeout: float | None = None) -> None:
        self.root = logbook_root(root)
        self.heartbeat_timeout = heartbeat_timeout or configured_heartbeat_timeout()
        self._caches: dict[Path, RunCache] = {}
        self._lock = threading.Lock()

    def projects(self) -> list[dict[str, Any]]:
        found = []
        for project in layout.iter_projects(self.root):
            runs = self.runs(project)
            if runs:
                last = max((r["last_activity"] or 0.0) for r in runs)
                found.append({"name": project, "runs": len(runs), "last_activity": last})
        return found

    def runs(self, project: str) -> list[dict[str, Any]]:
        """Every run of ``project`` as an overview, oldest first."""
        check_name(project, "project")
        overviews = []
        for path in layout.iter_run_dirs(self.root, project):
            cache = self._refreshed(path)
            if cache is not None and cache.meta:
                overviews.append(self.overview(cache))
        overviews.sort(key=lambda r: (r["started_at"] or 0.0, r["id"]))
        return overviews

    def run(self, project: str, run_id: str) -> RunCache:
        path = layout.run_dir(self.root, project, run_id)
        cache = self._refreshed(path)
        if cache is None or not cache.meta:
            raise RunNotFoundError(f"no run {run_id!r} in project {project!r}")
        return cache

    def status(self, cache: RunCache) -> str:
        return derived_status(cache.meta, self.heartbeat_timeout)

    def overview(self, cache: RunCache) -> dict[str, Any]:
        meta = cache.meta
        started, ended = meta.get("started_at"), meta.get("ended_at")
        last_activity = ended or meta.get("heartbeat_at") or started
        return {
            "id": meta.get("id", cache.path.name),
            "name": meta.get("name"),
            "project": meta.get("project", cache.path.parent.name),
            "status": self.status(cache),
            "started_at": started,
            "ended_at": ended,
            "duration": (last_activity - started) if last_activity and started else None,
            "last_activity": last_activity,
            "tags": meta.get("tags") or [],
            "params": cache.params,
            "steps": cache.metric_records,
            "metrics": {key: series.summary() for key, series in cache.series.items()},
        }

    def delete_run(self, project: str, run_id: str, *, force: bool = False) -> None:
        cache = self.run(project, run_id)
        if self.status(cache) == "running" and not force:
            raise ConfigError(f"run {run_id} is still running; stop it first, or delete with force")
        with self._lock:
            self._caches.pop(cache.path, None)
        shutil.rmtree(cache.path)

    def delete_project(self, project: str, *, force: bool = False) -> int:
        runs = self.runs(project)
        if not runs:
            raise RunNotFoundError(f"no project {project!r}")
        running = [r["id"] for r in runs if r["status"] == "running"]
        if running and not force:
            raise ConfigError(f"project {project!r} has running runs ({', '.join(running)}); stop them, or use force")
        path = layout.project_dir(self.root, project)
        with self._lock:
            for run_path in [p for p in self._caches if p.parent == path]:
                del self._caches[run_path]
        shutil.rmtree(path)
        return len(runs)

    def _refreshed(self, path: Path) -> RunCache | None:
        with self._lock:  # one refresh at a time: each parses only what was appended, so it is quick
            cache = self._caches.get(path)
            if cache is None:
                cache = self._caches[path] = RunCache(path)
            if not cache.refresh():
                self._caches.pop(path, None)
                return None
        return cache
