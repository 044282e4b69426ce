"""torch.distributed for batch runs: each pending item on exactly one rank, errors agreed by all."""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import BackendError, ConfigError, InputError, ModelNotFoundError, OutputError, RadEditError

log = logging.getLogger("radedit.batch")

def _rebuild(report: tuple[str, str]) -> RadEditError:
    """An error another rank reported (by class name and message) as the same kind here."""
    name, message = report
    if name == "OutputError":
        return OutputError(message)
    if name == "ConfigError":
        return ConfigError(message)
    if name == "ModelNotFoundError":
        return ModelNotFoundError(message)
    if name == "BackendError":
        return BackendError(message)
    return InputError(None, message)


@dataclass
class Ranks:
    """This process's place among the ranks; collectives are no-ops in one process."""

    rank: int = 0
    world: int = 1
    group: Any = None

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def current(cls) -> "Ranks":
        import torch.distributed as dist  # noqa: PLC0415

        if dist.is_available() and dist.is_initialized():
            world = dist.get_world_size()
            if world == 1:
                return cls()
            # Object collectives go over gloo: CPU pickles, whatever the main backend (NCCL) is.
            group = None
            if dist.get_backend() != "gloo":
                group = dist.new_group(backend="gloo", timeout=_dt.timedelta(seconds=_DIST_TIMEOUT_S[0]))
            return cls(dist.get_rank(), world, group)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError(
                f"started as one of {os.environ['WORLD_SIZE']} processes (WORLD_SIZE) but torch.distributed "
                "is not initialised, so every process would do every item: add "
                "configs/multi_gpu_inference.json to --config_file, or call radedit_core.batch.init_distributed()"
            )
        return cls()

    def all_gather(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        import torch.distributed as dist  # noqa: PLC0415

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist  # noqa: PLC0415

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist  # noqa: PLC0415

            dist.barrier(group=self.group)

    def agree(self, error: BaseException | None) -> None:
        """Raise on every rank if any rank failed; the first failing rank's error wins."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        message = None if error is None else (type(error).__name__, str(error))
        reports = self.all_gather(message)
        for rank, report in enumerate(reports):
            if report is not None:
                if error is not None and rank == self.rank:
                    raise error
                raise _rebuild(report)

    def shard(self, items: Sequence[Any]) -> list[Any]:
        return list(items[self.rank :: self.world])


#: The process group's timeout, for the gloo side group that carries the object collectives.
_DIST_TIMEOUT_S = [86400.0]


def _wants_cuda(device: Any) -> bool:
    import torch  # noqa: PLC0415

    text = "auto" if device is None else str(device)
    return text.startswith("cuda") or (text == "auto" and torch.cuda.is_available())


def init_distributed(device: Any = "auto", backend: str = "auto", timeout_s: float = 86400.0) -> Ranks:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment).

    ``backend="auto"``: NCCL when ``device`` means a GPU, gloo on the CPU. On
    GPUs each rank takes ``cuda:LOCAL_RANK``. Without torchrun's variables this
    is one process and nothing is initialised.  ``timeout_s`` bounds how long
    a rank that has finished its share waits in the final gather for the
    slowest one (torchrun stops every rank anyway if one dies).
    """
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed support")
    if dist.is_initialized():
        return Ranks.current()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        log.warning("not started by torchrun (no RANK/WORLD_SIZE in the environment): running as one process")
        return Ranks()
    cuda = _wants_cuda(device)
    if cuda and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} needs a CUDA GPU but none is available (use --device cpu)")
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    _DIST_TIMEOUT_S[0] = float(timeout_s)
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=float(timeout_s)))
    ranks = Ranks.current()
    log.info("rank %d of %d joined the process group (%s)", ranks.rank, ranks.world, backend)
    return ranks


def destroy_distributed() -> None:
    import torch.distributed as dist  # noqa: PLC0415

    # No barrier here: the run already ends with one (over gloo), and an NCCL
    # collective would fail when several ranks share a GPU.
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: Any = "auto") -> str:
    """``auto``/``cuda`` -> this rank's GPU when distributed; anything else unchanged."""
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    text = "auto" if device is None else str(device)
    if text in ("auto", "cuda") and torch.cuda.is_available() and dist.is_available() and dist.is_initialized():
        return f"cuda:{torch.cuda.current_device()}"
    return text


