"""``stepline.init`` and the module-level conveniences over the current run.

    run = stepline.init(project="mnist", config={"lr": 1e-3})
    stepline.log({"loss": 0.5})     # the same as run.log(...)
    stepline.finish()
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from stepline import lifecycle, metric_keys
from stepline.config import Settings, heartbeat_interval, heartbeat_timeout, resolve_settings
from stepline.errors import ConfigError, RunNotFoundError, SteplineError, warn
from stepline.job import Placement, is_node_part, job_placement, job_run_id, node_part_id, system_prefix
from stepline.logbook import layout
from stepline.logbook.reader import Logbook, RunView
from stepline.rank_runs import DisabledRun, NodeRun
from stepline.remote.registry import Backend, resolve_backends
from stepline.run import Run
from stepline.sinks.logbook import LogbookSink
from stepline.system import describe_process
from stepline.version import __version__
from stepline.writer import Writer


def init(
    project: str | None = None,
    name: str | None = None,
    *,
    config: Mapping[str, Any] | Any = None,
    dir: str | os.PathLike[str] | None = None,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
    resume: str | bool | None = None,
    backend: str | Sequence[str] | None = None,
    token: str | None = None,
    mode: str | None = None,
    all_ranks: bool = False,
    system_metrics: bool | None = None,
    system_interval: float | None = None,
) -> Run:
    """Start a run (or continue one) and return its handle.

        run = stepline.init(project="mnist", name="baseline", config={"lr": 1e-3}, tags=["cnn"])

    ``resume`` continues a run: a run id (found in any project when none is given) or name (it must exist),
    or ``True`` to continue the latest run of this name when there is one. ``backend="http://host:8683"``
    (or ``STEPLINE_REMOTE``) also pushes the run to a stepline server, with ``token`` (or
    ``STEPLINE_TOKEN``); ``"mlflow+http://..."``, ``"trackio+http://..."``, ``"traintrack+http://..."`` or
    ``"lmtracker+http://user:password@..."`` to those trackers (docs/backends.md); a list pushes to each. The
    local logbook stays the write-ahead copy.
    ``mode="disabled"`` (or ``STEPLINE_MODE=disabled``) makes every call a no-op, as does a process of
    rank other than zero unless ``all_ranks=True``. In a job over several nodes the run's id comes from the job
    id (``STEPLINE_JOB_ID``, torchrun's ``--rdzv-id`` or ``SLURM_JOB_ID``), so a restarted job continues it, and
    each node's local rank zero records its machine under ``system/node.<N>/`` (docs/configuration.md).
    A thread records the machine's figures under ``system/`` every ``system_interval`` seconds (10; or
    ``STEPLINE_SYSTEM_INTERVAL``): CPU, memory, disk, network and each NVIDIA GPU (docs/configuration.md);
    ``system_metrics=False`` (or ``STEPLINE_SYSTEM_METRICS=0``) turns it off.
    """
    settings = resolve_settings(project=project, name=name, dir=dir, resume=resume, mode=mode,
                                system_metrics=system_metrics, system_interval=system_interval)
    backends = resolve_backends(backend, token)
    tag_list = _check_tags(tags)
    if notes is not None and not isinstance(notes, str):
        raise ConfigError(f"notes must be text, got {type(notes).__name__}")

    placement = job_placement()
    job = None if all_ranks or not placement.multi_node else placement.job
    node_recorder = placement.records_node and job is not None and settings.system_interval is not None
    if not all_ranks and placement.multi_node and job is None and placement.local_rank == 0 \
            and settings.system_interval is not None:
        warn(f"stepline: this job spans {placement.nodes} nodes but the launcher gives no job id, so the nodes "
             "cannot find one run: only rank zero's machine is recorded. Set STEPLINE_JOB_ID to one value on "
             "every node (torchrun: --rdzv-id; SLURM sets SLURM_JOB_ID)")
    if settings.mode == "disabled" or (not all_ranks and placement.rank != 0 and not node_recorder):
        run: Run = DisabledRun(run_id="disabled", name=settings.name or "disabled", project=settings.project,
                               path=None, writer=None)
    elif node_recorder and job is not None:
        run = _open_node_part(settings, placement, job, backends)
    else:
        project_given = project is not None or "STEPLINE_PROJECT" in os.environ
        existing = _run_to_resume(settings, project_given, job)
        if existing:
            run = _continue(existing, settings, tag_list, notes, backends, job, placement)
        elif job is not None:
            run = _create(settings, tag_list, notes, backends, job_run_id(job, settings.project, settings.name),
                          {"job": job, "nodes": placement.nodes}, placement)
        else:
            run = _create(settings, tag_list, notes, backends)
    lifecycle.remember(run)
    if config is not None:
        run.params.set(config)
    return run


def reopen(run: Run) -> Run:
    """A new handle on an ended run that continues it, pushing to the same backends (what an evaluation after
    training needs, and how an integration continues its run after a fit):

        run = stepline.reopen(run)   # status running again; steps, seq and params carry on
    """
    if run.status == "running" or run.path is None:
        return run
    token = next((b.token for b in run.backends if b.token), None)
    return init(project=run.project, dir=run.path.parent.parent, resume=run.id,
                backend=[b.url for b in run.backends] or None, token=token,
                system_metrics=run.system_interval is not None, system_interval=run.system_interval)


def current_run() -> Run | None:
    """The most recently started run that is still open, or None: ``stepline.current_run()``."""
    return lifecycle.current()


def log(metrics: Mapping[str, Any], step: int | None = None, *, epoch: float | None = None) -> None:
    """Log to the current run: ``stepline.log({"loss": 0.3}, step=10)``."""
    _require_current().log(metrics, step, epoch=epoch)


def finish(timeout: float | None = None) -> bool:
    """Finish the current run: ``stepline.finish()``. Does nothing when no run is open."""
    run = lifecycle.current()
    return run.finish(timeout) if run is not None else True


def _require_current() -> Run:
    run = lifecycle.current()
    if run is None:
        raise SteplineError("no run is open: call stepline.init(project=...) before stepline.log(...)")
    return run


def _check_tags(tags: Sequence[str] | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not all(isinstance(t, str) and t for t in tags):
        raise ConfigError(f"tags must be a list of non-empty strings, e.g. tags=['baseline'], got {tags!r}")
    return list(dict.fromkeys(tags))


def _run_to_resume(settings: Settings, project_given: bool, job: str | None) -> RunView | None:
    if job is not None and not isinstance(settings.resume, str):  # the job's run, if the job ran before
        path = layout.run_dir(settings.root, settings.project, job_run_id(job, settings.project, settings.name))
        meta = layout.read_meta(path)
        return RunView(path, meta, heartbeat_timeout()) if meta is not None else None
    if not settings.resume:
        return None
    book = Logbook(settings.root)
    if settings.resume is True:
        runs = [r for r in book.runs(settings.project) if settings.name is None or r.name == settings.name]
        return runs[-1] if runs else None
    try:
        return book.run(str(settings.resume), project=settings.project)
    except RunNotFoundError as err:
        # A run id is unique in the logbook: without a project, find it in whichever project holds it.
        found = [] if project_given else [r for r in book.runs() if r.id == settings.resume]
        if found:
            return found[0]
        raise RunNotFoundError(f"{err}; to start a new run, drop resume= (or use resume=True)") from None


def _create(settings: Settings, tags: list[str], notes: str | None, backends: list[Backend],
            run_id: str | None = None, job_meta: dict[str, Any] | None = None,
            placement: Placement | None = None, kind: type[Run] = Run) -> Run:
    run_id, path = layout.create_run_dir(settings.root, settings.project, run_id)
    now = time.time()
    meta = {
        "format": layout.FORMAT_VERSION,
        "id": run_id,
        "name": settings.name or run_id,
        "project": settings.project,
        "status": "running",
        "created_at": now,
        "started_at": now,
        "ended_at": None,
        "heartbeat_at": now,
        "resumed_at": [],
        **describe_process(),
        "tags": tags,
        "notes": notes,
        "error": None,
        "summary": {},
        "stepline_version": __version__,
        **(job_meta or {}),
    }
    layout.write_meta(path, meta)
    return _open(settings, meta, path, first_seq=1, next_step=0, params=None, backends=backends,
                 placement=placement, kind=kind)


def _continue(view: RunView, settings: Settings, tags: list[str], notes: str | None, backends: list[Backend],
              job: str | None = None, placement: Placement | None = None, kind: type[Run] = Run) -> Run:
    meta = dict(view.meta)
    restarted = job is not None and meta.get("job") == job  # the launcher restarted the job: its process is gone
    if (meta.get("status") == "running" and view.status == "running" and meta.get("pid") != os.getpid()
            and not restarted):
        raise ConfigError(
            f"run {view.id} is still running (pid {meta.get('pid')} on {meta.get('host')}, heartbeat "
            f"{time.time() - (view.heartbeat_at or 0):.0f} s ago); stop it first, or wait "
            f"{heartbeat_timeout():.0f} s after it died"
        )
    max_seq, max_step = view.positions()
    now = time.time()
    meta.update(describe_process())
    meta.update(status="running", ended_at=None, error=None, heartbeat_at=now,
                resumed_at=[*(meta.get("resumed_at") or []), now],
                tags=list(dict.fromkeys([*(meta.get("tags") or []), *tags])))
    if notes is not None:
        meta["notes"] = notes
    if job is not None and placement is not None and not is_node_part(meta):  # the job's run: nodes find it
        known = meta.get("nodes") if meta.get("job") == job else None
        meta.update(job=job, nodes=max(known if isinstance(known, int) else 1, placement.nodes))
    layout.write_meta(view.path, meta)
    return _open(settings, meta, view.path, first_seq=max_seq + 1,
                 next_step=0 if max_step is None else max_step + 1, params=view.params(),
                 backends=backends, placement=placement if job is not None else None, kind=kind)


def _open_node_part(settings: Settings, placement: Placement, job: str, backends: list[Backend]) -> Run:
    """The part of the job's run that records this node's machine (what ``init`` returns on a node's local rank
    zero): made, or continued when the job restarted. Only a stepline server takes parts: a peer tracker's
    run holds rank zero's machine only."""
    # resume= names the run on every rank (its id: a node's logbook may not hold the run to look a name up in)
    main_id = settings.resume if isinstance(settings.resume, str) else job_run_id(job, settings.project,
                                                                                    settings.name)
    run_id = node_part_id(main_id, placement.node)
    servers = [b for b in backends if b.takes_node_parts]
    if len(servers) < len(backends):
        warn(f"stepline: node {placement.node}'s machine figures are kept in the logbook and sent to stepline "
             "servers only; " + ", ".join(b.url for b in backends if not b.takes_node_parts) + " get rank zero's")
    path = layout.run_dir(settings.root, settings.project, run_id)
    meta = layout.read_meta(path)
    if meta is not None:
        return _continue(RunView(path, meta, heartbeat_timeout()), settings, [], None, servers, job, placement,
                         kind=NodeRun)
    named = dataclasses.replace(settings, name=f"{settings.name or job} node {placement.node}")
    return _create(named, [], None, servers, run_id, {"job": job, "node": placement.node, "node_of": main_id},
                   placement, kind=NodeRun)


def _open(settings: Settings, meta: dict[str, Any], path: Any, *, first_seq: int, next_step: int,
          params: dict[str, Any] | None, backends: list[Backend], placement: Placement | None = None,
          kind: type[Run] = Run) -> Run:
    shippers = []
    if backends:
        # requests is imported only by a process that pushes somewhere
        from stepline.remote.shipper import Shipper, ShipperThread

        shippers = [ShipperThread(Shipper(path, b.new_transport()), b) for b in backends]

    def written(count: int) -> None:
        for shipper in shippers:
            shipper.written(count)

    writer = Writer([LogbookSink(path, meta)], first_seq=first_seq, max_queue=settings.queue_size,
                    max_queue_bytes=settings.queue_bytes, max_backlog_bytes=settings.max_backlog_bytes,
                    label=meta["id"], heartbeat_interval=heartbeat_interval(),
                    on_written=written if shippers else None)
    return kind(run_id=meta["id"], name=meta["name"], project=meta["project"], path=path, writer=writer,
                next_step=next_step, params=params, summary=meta.get("summary"), shippers=shippers,
                backends=backends, system_interval=settings.system_interval,
                system_prefix=system_prefix(placement) if placement is not None else metric_keys.SYSTEM)
