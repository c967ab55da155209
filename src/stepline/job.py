"""Where this process sits in a distributed job, as the launchers (torchrun, SLURM, Open MPI) say in the
environment, and how the nodes of one job find their one run.

    placement = job_placement()      # Placement(rank=5, local_rank=1, node=1, nodes=2, job="1234.0")
    placement.records_node           # False: only a node's local rank zero records that node's machine

In a job that spans nodes, global rank zero records the training into a run whose id comes from the job id
(:func:`job_run_id`), so a restarted job continues it; every other node's local rank zero records its machine's
figures into a part of that run, ``<run id>.node<N>``, under ``system/node.<N>/``. Readers show a run with
its parts as one run (docs/format.md, "Nodes of a job").
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from stepline import metric_keys

# Variables, in order of trust: torchrun's, SLURM's, Open MPI's, Intel MPI's / MPICH's and Lightning's.
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "JSM_NAMESPACE_RANK", "LOCAL_RANK")
LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")
NODE_VARIABLES = ("GROUP_RANK", "SLURM_NODEID", "NODE_RANK", "OMPI_COMM_WORLD_NODE_RANK")
NODE_COUNT_VARIABLES = ("GROUP_WORLD_SIZE", "SLURM_NNODES", "SLURM_JOB_NUM_NODES", "NUM_NODES")
# The same on every node of one job, and different for the next job. torchrun's run id is "none" unless
# --rdzv-id is given; a SLURM job's steps (each srun) are told apart by the step id.
JOB_VARIABLES = ("STEPLINE_JOB_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE")
LOCAL_WORLD_SIZE_VARIABLES = ("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE")
LAUNCHER_VARIABLES = frozenset(RANK_VARIABLES + LOCAL_RANK_VARIABLES + NODE_VARIABLES + NODE_COUNT_VARIABLES
                               + JOB_VARIABLES + WORLD_SIZE_VARIABLES + LOCAL_WORLD_SIZE_VARIABLES
                               + ("SLURM_STEP_ID",))
_NODE_KEY = re.compile(re.escape(metric_keys.SYSTEM) + r"node\.([0-9]{1,6})/")


@dataclass(frozen=True)
class Placement:
    rank: int
    local_rank: int
    node: int
    nodes: int
    job: str | None  # None: the launcher gives no job id

    @property
    def multi_node(self) -> bool:
        """Whether the job spans several machines (each then records its own, under ``system/node.<N>/``)."""
        return self.nodes > 1

    @property
    def records_node(self) -> bool:
        """Whether this process records its node's machine into the job's run: a node's local rank zero, on a
        node other than global rank zero's."""
        return self.multi_node and self.local_rank == 0 and self.rank != 0


def job_placement() -> Placement:
    """This process's place in its job (all zeros and one node outside of one)."""
    rank = _first_int(RANK_VARIABLES, 0)
    local_rank = _first_int(LOCAL_RANK_VARIABLES, rank)
    world = _first_int(WORLD_SIZE_VARIABLES, 0)
    local_world = _first_int(LOCAL_WORLD_SIZE_VARIABLES, 0)
    nodes = _first_int(NODE_COUNT_VARIABLES, world // local_world if world and local_world else 1)
    node = _first_int(NODE_VARIABLES, rank // local_world if local_world else 0)
    return Placement(rank=rank, local_rank=local_rank, node=node, nodes=max(nodes, 1), job=_job_id())


def job_run_id(job: str, project: str, name: str | None) -> str:
    """The id of a job's run: the same on every node, and for the job restarted. Twelve characters, so it is
    never one of the eight-character ids drawn at random."""
    digest = hashlib.sha256(f"{job}\0{project}\0{name or ''}".encode()).digest()
    number = int.from_bytes(digest[:12], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    characters = []
    for _ in range(12):
        number, digit = divmod(number, 36)
        characters.append(alphabet[digit])
    return "".join(characters)


def node_part_id(run_id: str, node: int) -> str:
    """The id of the part of ``run_id`` that holds node ``node``'s figures."""
    return f"{run_id}.node{node}"


def node_part_ids(meta: dict[str, object]) -> list[str]:
    """The ids of the parts a job's run may have (nodes 1 and up), from its metadata."""
    nodes = meta.get("nodes")
    if type(nodes) is not int or nodes < 2 or not isinstance(meta.get("id"), str):
        return []
    return [node_part_id(str(meta["id"]), node) for node in range(1, nodes)]


def node_of_key(key: str) -> int | None:
    """The node a ``system/node.<N>/...`` key is of, else None."""
    found = _NODE_KEY.match(key)
    return int(found.group(1)) if found else None


def system_prefix(placement: Placement) -> str:
    """Where this process's machine figures go: ``system/``, or ``system/node.<N>/`` in a multi-node job."""
    return f"{metric_keys.SYSTEM}node.{placement.node}/" if placement.multi_node else metric_keys.SYSTEM


def is_node_part(meta: dict[str, object]) -> bool:
    """Whether a run is a node's part of another run (lists leave these out: they show as that run)."""
    return isinstance(meta.get("node_of"), str)


def _job_id() -> str | None:
    for name in JOB_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value != "none":
            step = os.environ.get("SLURM_STEP_ID", "").strip() if name == "SLURM_JOB_ID" else ""
            return f"{value}.{step}" if step else value
    return None


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return default
