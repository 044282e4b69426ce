"""Data-parallel training across ``torchrun`` ranks: NCCL on GPUs, gloo on the CPU.

``torchrun --nproc_per_node=N ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous in their environment;
:func:`init_distributed` joins that process group (a no-op for a single
process or when the group exists already, e.g. created by the bundle's
``multi_gpu_train.json``), each rank takes ``cuda:LOCAL_RANK`` on GPUs, and
the trainable module is wrapped in :class:`torch.nn.parallel.DistributedDataParallel`,
which averages gradients over ranks: with per-sample seeded draws the mean
loss of ``world x b`` samples, the same as one process with batch ``world x b``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from .. import errors
from ..errors import ConfigError
from ..models.loading import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place among the ranks and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives (no-ops for one process) --------------------------------
    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist  # noqa: PLC0415

            dist.barrier()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over ranks, in float64."""
        if not self.distributed:
            return [float(v) for v in values]
        import torch.distributed as dist  # noqa: PLC0415

        t = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(t)
        return t.cpu().tolist()

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (None elsewhere)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist  # noqa: PLC0415

        out: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def agree(self, error: BaseException | None) -> None:
        """Raise on every rank if any rank failed (the first failing rank's message)."""
        reports = [None] if not self.distributed else None
        if self.distributed:
            import torch.distributed as dist  # noqa: PLC0415

            reports = [None] * self.world
            message = None if error is None else (type(error).__name__, str(error), getattr(error, "exit_code", 1))
            dist.all_gather_object(reports, message)
        if error is not None:
            raise error
        for report in reports or []:
            if report is not None:
                raise _remote_error(*report)

    def _collective_device(self) -> torch.device:
        import torch.distributed as dist  # noqa: PLC0415

        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def _remote_error(name: str, message: str, exit_code: int) -> Exception:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.RadEditError):
        # The same kind (and exit code); its constructor's signature differs by class.
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
        return exc
    return RuntimeError(f"another rank failed: {name}: {message}")


def _under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: Any = "auto", backend: str = "auto", timeout_s: float = 1800.0) -> DistributedContext:
    """Join torchrun's process group (if any) and pick this rank's device.

    ``backend="auto"``: NCCL when ``device`` means a GPU, gloo otherwise.
    ``timeout_s`` bounds every collective (validation on rank 0 while the
    others wait included).

    Raises:
        ConfigError: a GPU is asked for but none is available, or the torch
            build lacks torch.distributed.
    """
    import torch.distributed as dist  # noqa: PLC0415

    text = "auto" if device is None else str(device)
    wants_cuda = text.startswith("cuda") or (text == "auto" and torch.cuda.is_available())
    if wants_cuda and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} needs a CUDA GPU but none is available (use cpu)")
    if not dist.is_available():
        if _under_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
            raise ConfigError("this torch build has no torch.distributed support; run one process")
        return DistributedContext(device=resolve_device(device))
    if not dist.is_initialized() and _under_torchrun():
        if backend == "auto":
            backend = "nccl" if wants_cuda else "gloo"
        if wants_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=float(timeout_s)))
        log.info("rank %d of %d joined the process group (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return current_context(device)


def current_context(device: Any = "auto") -> DistributedContext:
    """The context of an existing process group (or of a single process)."""
    import torch.distributed as dist  # noqa: PLC0415

    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext(device=resolve_device(device))
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    text = "auto" if device is None else str(device)
    if text in ("auto", "cuda") and torch.cuda.is_available():
        dev = torch.device("cuda", local % torch.cuda.device_count())
    else:
        dev = resolve_device(device)
    return DistributedContext(rank=rank, world=world, local_rank=local, device=dev)


def destroy_distributed() -> None:
    import torch.distributed as dist  # noqa: PLC0415

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(module: torch.nn.Module, context: DistributedContext) -> torch.nn.Module:
    """``module`` in DistributedDataParallel when there are several ranks, else itself."""
    if not context.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

    ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
