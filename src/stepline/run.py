"""The ``Run``: the handle a training script logs through. Calls only check and enqueue; the writer
thread does the I/O.

    run = stepline.init(project="mnist", config={"lr": 1e-3})
    for step in range(100):
        run.log({"train/loss": loss}, step=step)
    run.finish()
"""

from __future__ import annotations

import functools
import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from stepline import events, lifecycle, metric_keys
from stepline.channel import RunChannel
from stepline.config import remote_finish_timeout
from stepline.errors import InvalidValueError, warn
from stepline.files import Files
from stepline.lifecycle import describe_error, status_for_exception
from stepline.logs import Logs
from stepline.media.types import Media
from stepline.metrics import MetricsLogger
from stepline.params import Params
from stepline.run_queue import ClosedQueue, RunQueue
from stepline.sampler import SystemSampler
from stepline.summary import Summary
from stepline.values import INT64_MAX, INT64_MIN, PLAIN_NUMBER_TYPES, UINT64_MAX, DeferredScalar, coerce_metric
from stepline.writer import DEFERRED_METRICS_TAG, METRICS_TAG, Writer

if TYPE_CHECKING:
    from stepline.remote.registry import Backend
    from stepline.remote.shipper import ShipperThread

F = TypeVar("F", bound=Callable[..., Any])
_time = time.time


class Run:
    """One tracked run. Create it with :func:`stepline.init`; use it as a handle, context manager or decorator.

        with stepline.init(project="demo") as run:
            run.params.set(lr=0.1)
            run.log({"loss": 0.5})
    """

    def __init__(
        self,
        *,
        run_id: str,
        name: str,
        project: str,
        path: Path | None,
        writer: Writer | None,
        next_step: int = 0,
        params: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        shippers: Sequence[ShipperThread] = (),
        backends: Sequence[Backend] = (),
        system_interval: float | None = None,
        system_prefix: str = metric_keys.SYSTEM,
    ) -> None:
        self.id = run_id
        self.name = name
        self.project = project
        self.path = path
        self.status = "running"
        self._writer = writer
        self._shippers = list(shippers)
        self.backends: tuple[Backend, ...] = tuple(backends)  # the remote backends init was given
        self._queue = RunQueue(writer)
        self._next_step = next_step
        self._warned: set[Any] = set()
        channel = RunChannel(run_id=run_id, path=path, put=self._put, warn_once=self._warn_once,
                             flush=self.flush, log=self.log)
        self.metrics = MetricsLogger(channel)
        self.params = Params(channel, params)
        self.summary = Summary(channel, summary)
        self.logs = Logs(channel)
        self.files = Files(channel)
        self.system_interval = system_interval  # seconds between samples of the machine's figures; None: none
        self._system_prefix = system_prefix  # system/, or system/node.<N>/ in a job over several nodes
        self._sampler = SystemSampler(self._record_system, system_interval, label=run_id) \
            if system_interval is not None and writer is not None else None
        _RUNS.add(self)

    def __repr__(self) -> str:
        return f"<stepline.Run {self.project}/{self.name} id={self.id} {self.status}>"

    # -- metrics: the hot path -------------------------------------------------------------------

    def log(self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: float | None = None) -> None:
        """Log one point per key: ``run.log({"loss": 0.3, "acc": 0.9}, step=10)``.

        Without ``step`` the point goes at the run's largest step + 1. Media (``stepline.Image``,
        ``Histogram``, ``Table``, ``Text``, ``Audio``, or a list of one kind) go at the same step. Values that are
        neither are refused with a warning that names the key; the call's other keys still land.
        """
        if step is None or type(step) is int:  # plain numbers: read at once by the queue's native segment
            at = self._next_step if step is None else step
            if self._queue.add_metrics(_time(), at, epoch, metrics):
                if at >= self._next_step:
                    self._next_step = at + 1
                return
        values = dict(metrics)
        tag = METRICS_TAG
        media = None  # no dict made per call: the hot path stays as fast as before media
        for key, value in values.items():
            kind = type(value)
            # floats first: the common case costs one check; ints must fit in 64 bits (what JSON readers keep)
            if (kind is not float and (kind not in PLAIN_NUMBER_TYPES or not INT64_MIN <= value <= UINT64_MAX)
                    or type(key) is not str or not key):
                values, tag, media = self._coerce(values)
                break
        if epoch is not None and type(epoch) is not float and (
                type(epoch) is not int or not INT64_MIN <= epoch <= UINT64_MAX):
            epoch = self._coerce_epoch(epoch)
        if not values and not media:
            return
        if step is None:
            step = self._next_step
        elif type(step) is not int:
            step = self._coerce_step(step)
        if step >= self._next_step:
            if step > INT64_MAX:  # checked here only: such a step is always past the largest so far
                step = self._coerce_step(step)
            self._next_step = step + 1
        elif step < INT64_MIN:
            step = self._coerce_step(step)
            self._next_step = step + 1
        if media is not None:
            self._put_media(media, step)
        if values:
            self._queue.put((tag, _time(), step, epoch, values))

    def _put_media(self, media: dict[str, list[Media]], step: int) -> None:
        """Queue each key's media, copied now (all the caller pays; the writer thread encodes them)."""
        for key, pieces in media.items():
            kinds = sorted({piece.kind for piece in pieces})
            try:
                if len(kinds) > 1:
                    raise InvalidValueError(f"{key!r}: one key takes one kind of media at a time, got {kinds}")
                payload = [piece.taken(key) for piece in pieces]
            except InvalidValueError as err:
                self._warn_once(("media", key, type(err)), f"{err}; it is left out, the call's other keys are kept")
                continue
            except Exception as err:  # a figure that cannot draw itself, a tensor that cannot be read ...
                self._warn_once(("media", key, type(err)), f"{key!r}: the {kinds[0]} cannot be read "
                                f"({type(err).__name__}: {err}); it is left out, the call's other keys are kept")
                continue
            left_out = sum(item.get("left_out", 0) for item in payload)
            if left_out:
                self._warn_once(("media", key, "left_out"), f"{key!r}: {left_out} values that are NaN or infinite are "
                                                            "left out of the histogram")
            self._queue.put({"type": events.MEDIA, "seq": None, "time": _time(), "step": step, "key": key,
                             "kind": kinds[0], "payload": payload})

    def _record_system(self, figures: dict[str, float]) -> None:
        """Queue a sample of the machine's figures (on the sampler's thread): at the run's current step, which it
        does not move, so that the training's own steps are as they would be without it."""
        self._queue.items.append((METRICS_TAG, _time(), max(self._next_step - 1, 0), None, self._placed(figures)))

    def _placed(self, figures: dict[str, float]) -> dict[str, float]:
        """The figures under this machine's prefix (``system/node.3/cpu.percent`` on node 3 of a job)."""
        if self._system_prefix == metric_keys.SYSTEM:
            return figures
        cut = len(metric_keys.SYSTEM)
        return {self._system_prefix + key[cut:]: value for key, value in figures.items()}

    def _coerce(self, values: dict[Any, Any]) -> tuple[dict[str, Any], str, dict[str, list[Media]] | None]:
        clean: dict[str, Any] = {}
        media: dict[str, list[Media]] = {}
        tag = METRICS_TAG
        for key, value in values.items():
            if type(key) is not str or not key:
                self._warn_once(("key", repr(key)), f"metric key {key!r} is refused: keys are non-empty strings")
                continue
            if isinstance(value, Media):
                media[key] = [value]
                continue
            if isinstance(value, (list, tuple)) and value and all(isinstance(piece, Media) for piece in value):
                media[key] = list(value)  # a gallery
                continue
            try:
                number = coerce_metric(key, value)
            except InvalidValueError as err:
                self._warn_once(("value", key, type(value)), str(err))
                continue
            if isinstance(number, DeferredScalar):
                tag = DEFERRED_METRICS_TAG
            clean[key] = number
        return clean, tag, media or None

    def _coerce_step(self, step: Any) -> int:
        try:
            number = coerce_metric("step", step)
            if isinstance(number, DeferredScalar):
                number = number.resolve()
            if isinstance(number, bool) or number != int(number):
                raise InvalidValueError(f"step must be a whole number, got {step!r}")
            if not INT64_MIN <= int(number) <= INT64_MAX:
                raise InvalidValueError(f"step {step!r} is beyond a 64-bit integer")
            return int(number)
        except (InvalidValueError, ValueError, OverflowError) as err:
            self._warn_once(("step", type(step)), f"{err}; the point goes at the next step ({self._next_step})")
            return self._next_step

    def _coerce_epoch(self, epoch: Any) -> float | int | None:
        try:
            number = coerce_metric("epoch", epoch)
            number = number.resolve() if isinstance(number, DeferredScalar) else number
        except InvalidValueError as err:
            self._warn_once(("epoch", type(epoch)), f"{err}; the point is logged without its epoch")
            return None
        return int(number) if type(number) is bool else number  # an epoch is a number wherever it goes

    # -- shortcuts ---------------------------------------------------------------------------------

    def debug(self, message: str, **context: Any) -> None:
        """``run.debug("shapes", x=[8, 32])``"""
        self.logs.log(message, "DEBUG", **context)

    def info(self, message: str, **context: Any) -> None:
        """``run.info("epoch done", epoch=1)``"""
        self.logs.log(message, "INFO", **context)

    def warning(self, message: str, **context: Any) -> None:
        """``run.warning("loss spiked", loss=9.1)``"""
        self.logs.log(message, "WARNING", **context)

    def error(self, message: str, **context: Any) -> None:
        """``run.error("eval failed", reason="OOM")``"""
        self.logs.log(message, "ERROR", **context)

    # -- delivery and lifecycle --------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is in the logbook: ``run.flush(timeout=5)``; False on timeout."""
        return self._writer.flush(timeout) if self._writer is not None else True

    def finish(self, timeout: float | None = None) -> bool:
        """Mark the run finished and wait for its records to land: ``run.finish()``; idempotent.

        Without ``timeout`` it waits for the local logbook fully and for remote backends at most
        ``STEPLINE_REMOTE_TIMEOUT`` seconds (30), then says what is unsent and how to send it.
        """
        return self.end("finished", None, timeout)

    def fail(self, error: BaseException | str | None = None, timeout: float | None = None) -> bool:
        """Mark the run failed, with the exception or message: ``run.fail(err)``.

        A ``KeyboardInterrupt`` marks it killed instead, as it does anywhere else.
        """
        status = status_for_exception(error) if isinstance(error, BaseException) else "failed"
        return self.end(status, describe_error(error), timeout)

    def end(self, status: str, error: dict[str, Any] | None = None, timeout: float | None = None) -> bool:
        """End the run with ``status`` (finished, failed or killed) and an error record: what ``finish`` and
        ``fail`` do, and what the process's exit, an uncaught exception and SIGTERM do to every open run.

            run.end("killed", {"type": "Preempted", "message": "the job was preempted", "traceback": None})
        """
        if self.status != "running":
            return True
        self.status = status
        lifecycle.forget(self)
        if self._sampler is not None:
            self._sampler.stop()  # its last sample goes before the status
        writer = self._writer
        if writer is None:
            self._queue.stop(ClosedQueue(self._warn_closed))
            return True
        record: dict[str, Any] = {"type": events.STATUS, "seq": None, "time": _time(), "status": status}
        if error is not None:
            record["error"] = error
        self._queue.stop(ClosedQueue(self._warn_closed))  # closes the open segment: the status goes after it
        writer.items.append(record)
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._shippers and deadline is None:  # a dead server must not hang the end of training
            deadline = time.monotonic() + remote_finish_timeout()
        done = writer.close(timeout)
        if writer.alive:
            warn(
                f"stepline run {self.id}: {writer.pending()} records were still being written when "
                f"finish() gave up after {timeout} s; they are lost if this process exits now"
            )
        for shipper in self._shippers:  # each remote backend gets what is left of the timeout
            left = max(0.0, deadline - time.monotonic()) if deadline is not None else None
            done = shipper.close(left) and done
        return done

    def _put(self, record: dict[str, Any]) -> None:
        """Queue a params, log, file or status record (the rare, non-metric records)."""
        self._queue.put(record)

    def _warn_closed(self) -> None:
        self._warn_once(("closed",), f"run {self.id} is {self.status}; this and later records are ignored. "
                                     f"Continue it with stepline.init(resume={self.id!r}).")

    def _warn_once(self, key: Any, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warn(f"stepline: {message}")

    def _detach_after_fork(self) -> None:
        """In a forked child the writer thread does not exist: drop records instead of queueing for ever."""
        self._queue = RunQueue(None)
        self._writer = None
        self._sampler = None  # its thread is not in the child either

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is None:
            self.finish()
        else:
            self.end(status_for_exception(error), describe_error(error), None)

    def __call__(self, function: F) -> F:
        """Use the run as a decorator: the run ends when ``function`` returns or raises."""

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


_RUNS: weakref.WeakSet[Run] = weakref.WeakSet()  # every run of this process, for the fork hook below


def _detach_all_after_fork() -> None:
    for run in list(_RUNS):
        run._detach_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_detach_all_after_fork)
