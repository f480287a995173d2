"""Where an experiment's jobs run: processes of this machine, or an existing Ray cluster.

The jobs of an experiment are independent (:func:`~ser_robot.experiments.runner.run_job` takes a
:class:`~ser_robot.experiments.runner.JobSpec` and writes its own folder), so any engine that runs
a function on a worker can run them. A lab with a cluster uses the cluster's own scheduler:

- ``local``: in this process (``workers == 1``) or in ``workers`` spawned processes, each job
  with ``cpu_count // workers`` torch threads; the workers end when the experiment's process dies.
- ``ray``: one Ray task per job on the cluster at ``ray_address`` (``None``: the cluster this
  process is already connected to, else a new local one), each asking for ``num_cpus`` equal to
  its torch threads and ``gpus_per_job`` GPUs; Ray places them. Ray is imported only here, only
  for this launcher.

One job that uses several GPUs stays a ``torchrun`` (DDP) matter, not a launcher's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any

from ser_robot.errors import ExperimentError

__all__ = ["LAUNCHERS", "launch"]

log = logging.getLogger(__name__)

LAUNCHERS: tuple[str, ...] = ("local", "ray")


def _failed(job: Any, error: BaseException) -> ExperimentError:
    return ExperimentError(f"job {job.job_dir} failed: {type(error).__name__}: {error}; finished jobs are kept, "
                           "run the experiment again to resume")


def launch(jobs: Sequence[Any], run: Callable[[Any], dict[str, Any]], on_done: Callable[[dict[str, Any]], None],
           launcher: str = "local", workers: int = 1, ray_address: str | None = None,
           gpus_per_job: float = 0.0) -> None:
    """Run every job of ``jobs`` with ``run`` on ``launcher``, calling ``on_done(record)`` as each finishes.

    Raises :class:`ExperimentError` naming the first job that failed (jobs already finished stay).
    """
    if launcher not in LAUNCHERS:
        raise ExperimentError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    if not jobs:
        return
    if launcher == "ray":
        _launch_ray(jobs, run, on_done, ray_address, gpus_per_job)
    elif workers == 1 or len(jobs) == 1:
        for job in jobs:
            try:
                record = run(job)
            except Exception as error:
                raise _failed(job, error) from error
            on_done(record)
    else:
        _launch_processes(jobs, run, on_done, min(workers, len(jobs)))


def _launch_processes(jobs: Sequence[Any], run: Callable, on_done: Callable, workers: int) -> None:
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent)
    try:
        pending = {pool.submit(run, job): job for job in jobs}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in finished:
                job = pending.pop(future)
                error = future.exception()
                if error is not None:
                    raise _failed(job, error) from error
                on_done(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _die_with_parent() -> None:
    """In a worker process: ask Linux to send it SIGTERM when the experiment's process dies, so a killed
    ``ser-robot experiment`` leaves no worker training on (elsewhere: nothing to do)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))


def _launch_ray(jobs: Sequence[Any], run: Callable, on_done: Callable, address: str | None,
                gpus_per_job: float) -> None:
    try:
        import ray
    except ImportError:
        raise ExperimentError("the ray launcher needs Ray: pip install -r requirements/cluster.txt") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(run)
    pending = {remote.options(num_cpus=job.threads, num_gpus=gpus_per_job).remote(job): job for job in jobs}
    try:
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(finished[0])
            try:
                record = ray.get(finished[0])
            except Exception as error:
                raise _failed(job, error) from error
            on_done(record)
    finally:
        for ref in pending:
            ray.cancel(ref)
