"""Distributed data-parallel training started with ``torchrun``.

``torchrun --nproc_per_node N -m ser_robot.train --config ... --manifest ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; :func:`init_distributed` reads them
and joins the process group: ``gloo`` on the CPU, ``nccl`` on CUDA (device ``cuda:LOCAL_RANK``).
Without them (a plain ``python`` run) it returns a single-process context and touches nothing.

How a run is shared (see :mod:`ser_robot.train.trainer`):

- data: every rank computes the same global batches of ``batch_size`` utterances
  (:class:`~ser_robot.train.data.SortaGradBatchSampler`) and keeps a contiguous shard of each,
  so N processes see exactly the batches one process sees; the loss of a shard is its sum
  divided by the *global* batch size times N, which, after DDP's gradient averaging, is the
  gradient of the global batch's mean loss;
- metrics: training loss sums are all-reduced; validation and test predictions are gathered
  from every rank and scored once with :mod:`ser_robot.metrics` (identical on all ranks);
- checkpoints and result files are written by rank 0 only, after a barrier.

Limits: BatchNorm statistics are per rank (convert the model with
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` on CUDA to share them); augmentation draws
independent parameters per rank (the same distribution, not the same samples as one process);
the ``ccc`` loss is computed per shard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistContext", "all_gather_objects", "all_reduce_sum", "barrier", "cleanup", "init_distributed"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its machine, ``device``,
    ``backend`` (``None`` when not distributed), ``owns_group`` (this module started the group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the rank that writes files and shows progress bars."""
        return self.rank == 0


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:local_rank`` when CUDA is available, else ``cpu``; ``cuda`` without CUDA raises."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        from ser_robot.errors import TrainError

        raise TrainError("device 'cuda' asked for, but torch sees no CUDA device; set device: auto or cpu")
    if preference in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group if the environment names one, else a 1-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=target)
    backend = "nccl" if target.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        if target.type == "cuda":
            torch.cuda.set_device(target)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        owns = True
    else:
        backend = dist.get_backend()
    return DistContext(rank, world_size, local_rank, target, backend, owns)


def cleanup(context: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistContext) -> None:
    if context.distributed:
        if context.backend == "nccl":
            dist.barrier(device_ids=[context.device.index])
        else:
            dist.barrier()


def all_reduce_sum(context: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks of ``values`` (any shape; returned on its device)."""
    if not context.distributed:
        return values
    work = values.detach().to(context.device, torch.float64 if context.backend == "gloo" else values.dtype).clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(values.device, values.dtype)


def all_gather_objects(context: DistContext, value: Any) -> list[Any]:
    """``[value of rank 0, value of rank 1, ...]`` (picklable values); ``[value]`` on one process."""
    if not context.distributed:
        return [value]
    out: list[Any] = [None] * context.world_size
    dist.all_gather_object(out, value)
    return out
