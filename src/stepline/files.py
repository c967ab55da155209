"""``run.files``: files kept with the run, the format chosen by the file name's extension.

    run.files.save({"acc": 0.9}, "results.json")
    ckpt = run.files("checkpoints")
    ckpt.save(model.state_dict(), "epoch_3.pt")      # files/checkpoints/epoch_3.pt
    ckpt.load("epoch_3.pt")
    run.files.add("outputs/confusion.png")           # copy an existing file or folder

The object is serialised when ``save`` is called (so later changes to it are not saved) and written by
the writer thread; ``load``, ``exists`` and ``list`` first wait for earlier saves to land.
"""

from __future__ import annotations

import io
import os
import pickle
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from stepline import events
from stepline.errors import ConfigError, MissingDependencyError, SteplineError, warn
from stepline.logbook import layout
from stepline.names import check_relative_path
from stepline.optional import optional_import
from stepline.values import to_json_safe

if TYPE_CHECKING:
    from stepline.channel import RunChannel

TEXT_EXTENSIONS = {".txt", ".md", ".log", ".csv", ".yaml", ".yml", ".toml", ".html", ".svg"}
PICKLE_EXTENSIONS = {".pkl", ".pickle"}
TORCH_EXTENSIONS = {".pt", ".pth"}


class Files:
    """The run's files, under an optional namespace (a sub-folder of ``files/``)."""

    def __init__(self, run: RunChannel, namespace: str = "") -> None:
        self._run = run
        self._namespace = check_relative_path(namespace, "files namespace") if namespace else ""

    def __call__(self, namespace: str) -> Files:
        """Files under ``files/<namespace>/``: ``run.files("checkpoints").save(state, "last.pt")``."""
        return Files(self._run, self._relative(namespace))

    def save(self, obj: Any, name: str) -> str:
        """Serialise ``obj`` by ``name``'s extension and keep it; returns the path relative to ``files/``."""
        relative = self._relative(name)
        if self._run.path is None:  # a disabled run: skip the serialisation too
            return relative
        try:
            data = serialise(obj, relative)
        except MissingDependencyError as err:  # the environment, not the call: training goes on
            warn(f"stepline: {err}; run.files.save did not keep {relative!r}")
            return relative
        self._run.put({"type": events.FILE, "seq": None, "time": time.time(), "path": relative,
                        "size": len(data), "data": data})
        return relative

    def add(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Copy an existing file or folder into the run: ``run.files.add("plots/loss.png")``."""
        source = Path(path)
        if not source.exists():
            raise ConfigError(f"run.files.add: {source} does not exist")
        relative = self._relative(name if name is not None else source.name)
        self._run.put({"type": events.FILE, "seq": None, "time": time.time(), "path": relative,
                        "source": str(source.resolve())})
        return relative

    def load(self, name: str) -> Any:
        """Read a saved file back, by its extension: ``run.files.load("results.json")``."""
        path = self._path(name)
        if path is None or not path.is_file():
            raise SteplineError(f"run {self._run.run_id} has no file {self._relative(name)!r}")
        return deserialise(path.read_bytes(), path.suffix.lower())

    def exists(self, name: str) -> bool:
        """``run.files.exists("best.pt")``"""
        path = self._path(name)
        return path is not None and path.exists()

    def list(self) -> list[str]:
        """Files under this namespace, relative to it, sorted: ``run.files("checkpoints").list()``."""
        run_path = self._run_path()
        if run_path is None:
            return []
        base = layout.file_path(run_path, self._namespace) if self._namespace else run_path / layout.FILES_DIR
        return layout.list_files(base)

    def _relative(self, name: str) -> str:
        relative = check_relative_path(name, "file name")
        return f"{self._namespace}/{relative}" if self._namespace else relative

    def _run_path(self) -> Path | None:
        """The run's folder once earlier saves have landed; None for a run that records nothing."""
        self._run.flush()
        return self._run.path

    def _path(self, name: str) -> Path | None:
        relative = self._relative(name)
        run_path = self._run_path()
        return layout.file_path(run_path, relative) if run_path is not None else None


def serialise(obj: Any, name: str) -> bytes:
    """The bytes of ``obj`` in the format ``name``'s extension asks for."""
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        safe, _ = to_json_safe(obj)
        return orjson.dumps(safe, option=orjson.OPT_INDENT_2)
    if suffix in PICKLE_EXTENSIONS:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if suffix in (".npy", ".npz"):
        numpy = optional_import("numpy", f"saving {name!r}", "pip install numpy, or save it as .pkl")
        buffer = io.BytesIO()
        if suffix == ".npy":
            numpy.save(buffer, obj, allow_pickle=False)
        elif isinstance(obj, dict):
            numpy.savez(buffer, **obj)
        else:
            numpy.savez(buffer, obj)
        return buffer.getvalue()
    if suffix in TORCH_EXTENSIONS:
        torch = optional_import("torch", f"saving {name!r}", "pip install torch, or save it as .pkl or .npy")
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, str):
        return obj.encode("utf-8")
    raise ConfigError(
        f"cannot choose a format for {name!r} ({type(obj).__name__}): give it an extension such as "
        ".json, .pkl, .npy, .pt, or pass bytes or text"
    )


def deserialise(data: bytes, suffix: str) -> Any:
    if suffix == ".json":
        return orjson.loads(data)
    if suffix in PICKLE_EXTENSIONS:
        return pickle.loads(data)  # the run's own files, written by this user
    if suffix in (".npy", ".npz"):
        numpy = optional_import("numpy", f"reading a {suffix} file", "pip install numpy")
        loaded = numpy.load(io.BytesIO(data), allow_pickle=False)
        return dict(loaded) if suffix == ".npz" else loaded
    if suffix in TORCH_EXTENSIONS:
        torch = optional_import("torch", f"reading a {suffix} file", "pip install torch")
        return torch.load(io.BytesIO(data), weights_only=False)
    if suffix in TEXT_EXTENSIONS:
        return data.decode("utf-8")
    return data
