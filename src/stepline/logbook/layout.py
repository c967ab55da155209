"""The one place that knows the logbook's on-disk layout (specified in docs/format.md).

    <root>/<project>/<run id>/meta.json        the run's metadata and status, replaced atomically
    <root>/<project>/<run id>/params.jsonl     params operations, appended
    <root>/<project>/<run id>/metrics.jsonl    metric points, appended
    <root>/<project>/<run id>/logs.jsonl       log lines, appended
    <root>/<project>/<run id>/media.jsonl      images, histograms, tables, text, audio logged: one record each
    <root>/<project>/<run id>/media/           their files, named by the record's seq
    <root>/<project>/<run id>/files/           files saved by the run
    <root>/<project>/<run id>/index/           derived from metrics.jsonl, rebuildable (logbook/index.py)
"""

from __future__ import annotations

import os
import re
import secrets
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from stepline import events
from stepline.errors import InvalidNameError, LogbookError
from stepline.names import check_name, check_project, check_relative_path

FORMAT_VERSION = 2  # 2: runs keep an index of their metrics; readers take format-1 runs (without one) alike
META_FILE = "meta.json"
FILES_DIR = "files"
MEDIA_DIR = "media"
INDEX_DIR = "index"
RECORD_FILES = {
    events.METRICS: "metrics.jsonl",
    events.PARAMS: "params.jsonl",
    events.LOG: "logs.jsonl",
    events.MEDIA: "media.jsonl",
}

_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LENGTH = 8


def new_run_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def project_dir(root: Path, project: str) -> Path:
    return root / check_project(project)


def run_dir(root: Path, project: str, run_id: str) -> Path:
    return project_dir(root, project) / check_name(run_id, "run id")


def record_path(run_path: Path, record_type: str) -> Path:
    return run_path / RECORD_FILES[record_type]


_MEDIA_NAME = re.compile(r"[0-9]{1,20}-[0-9]{1,9}(\.[a-z0-9]{1,10}){1,2}")


def is_media_name(name: str) -> bool:
    """Whether ``name`` is one the writer gives a media file (``12-0.png``), and so never a path elsewhere."""
    return bool(_MEDIA_NAME.fullmatch(name))


def media_name(item: dict[str, Any]) -> str | None:
    """The name of a media item's file (``12-0.png`` of ``{"file": "media/12-0.png", ...}``), or None when the
    item has none of the names the writer gives."""
    file = item.get("file")
    if not isinstance(file, str) or not file.startswith(f"{MEDIA_DIR}/"):
        return None
    name = file[len(MEDIA_DIR) + 1:]
    return name if is_media_name(name) else None


def media_path(run_path: Path, name: str) -> Path:
    """The path of a run's media file (``12-0.png``: the names the writer gives, and no other)."""
    if not is_media_name(name):
        raise InvalidNameError(f"{name!r} is not a media file's name (like 12-0.png)")
    return run_path / MEDIA_DIR / name


def file_path(run_path: Path, relative: str) -> Path:
    """The path of a run's file; ``relative`` is validated, so it never leaves ``files/``."""
    return run_path / FILES_DIR / check_relative_path(relative, "file name")


def list_files(base: Path) -> list[str]:
    """The files under ``base``, relative to it, sorted; the sink's half-written temporary files are left out."""
    if not base.is_dir():
        return []
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file() and not is_temporary(p.name))


def temporary_name(name: str) -> str:
    """Where a file is written before it is renamed into place, so no reader sees half of it: a name of its
    own each time, so two writers of one file (two uploads at once) never write into each other's."""
    return f".{name}.{secrets.token_hex(6)}.tmp"


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def create_run_dir(root: Path, project: str, run_id: str | None = None) -> tuple[str, Path]:
    """Make a new, empty run folder with a fresh id (or ``run_id``: a job's run, which its first process makes);
    safe when several processes share the root."""
    parent = project_dir(root, project)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        if run_id is not None:
            path = parent / check_name(run_id, "run id")
            path.mkdir(exist_ok=True)
            return run_id, path
        while True:
            run_id = new_run_id()
            path = parent / run_id
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return run_id, path
    except OSError as err:
        raise LogbookError(f"cannot create a run folder under {parent}: {err}") from err


def write_meta(run_path: Path, meta: dict[str, Any]) -> None:
    """Replace meta.json atomically: a reader sees the old or the new file, never half of one."""
    target = run_path / META_FILE
    temporary = run_path / temporary_name(META_FILE)
    temporary.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    os.replace(temporary, target)


def read_meta(run_path: Path) -> dict[str, Any] | None:
    """The run's metadata, or None when the folder holds no readable meta.json."""
    try:
        meta = orjson.loads((run_path / META_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def iter_projects(root: Path) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.name.startswith("."):
            yield entry.name


def iter_run_dirs(root: Path, project: str) -> Iterator[Path]:
    try:
        entries = list(os.scandir(project_dir(root, project)))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir() and (Path(entry.path) / META_FILE).is_file():
            yield Path(entry.path)
