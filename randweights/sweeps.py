"""Runs of a plan on any ``concurrent.futures.Executor``: a process pool here, Dask, or Slurm through submitit
(``randweights sweep``).

Each run is one task, :func:`run_task`, that calls :func:`randweights.runs.get_or_run` in the worker; the run
store does the rest (a stored record is returned, not retrained; the per-run lock keeps two workers from
training one run). A task never raises: it returns what happened (trained, reused or failed with the reason), so
one failing run never stops the others. A failed run is submitted once more; a run that fails twice is
reported. A local worker process picks its GPU (``CUDA_VISIBLE_DEVICES``) before it first touches CUDA.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import env, runs, store
from .config import RunConfig
from .errors import ConfigError, check_range

EXECUTORS = ("local", "dask", "slurm")
FORWARDED_ENV = (env.DATA, env.DOWNLOAD, env.TRAIN)  # into every worker


@dataclass
class Outcome:
    """What one task did with one run."""

    run_id: str
    status: str  # "trained", "reused" or "failed"
    seconds: float = 0.0
    error: str = ""
    worker: str = ""
    attempts: int = 1


def run_task(cfg: RunConfig, root: str, device: str | None = None, keep_model: bool = False, environ: dict | None = None) -> Outcome:
    """``get_or_run(cfg)`` in a worker, with ``environ`` (the caller's :data:`FORWARDED_ENV`) set; "reused" when the
    record was there (or another worker finished it first)."""
    env.apply(environ or {})
    env.set_default(env.PROGRESS, "0")
    worker = f"{socket.gethostname()}:{os.getpid()}"
    start = time.perf_counter()
    try:
        before = store.trainings_here()
        runs.get_or_run(cfg, root=root, device=device, keep_model=keep_model)
        status = "trained" if store.trainings_here() > before else "reused"
        return Outcome(cfg.run_id, status, time.perf_counter() - start, worker=worker)
    except Exception as err:  # noqa: BLE001 - reported in the summary; the sweep goes on
        return Outcome(cfg.run_id, "failed", time.perf_counter() - start, describe(err), worker)


def describe(err: BaseException) -> str:
    """``Type: first line of the message (file:line)`` of the innermost frame."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}{where}"


@dataclass
class Summary:
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # by run_id, in the order of the configs

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes.values())

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]

    def lines(self) -> list[str]:
        out = [f"[sweep] {len(self.outcomes)} runs: {self.count('trained')} trained, {self.count('reused')} reused, "
               f"{self.count('failed')} failed"]
        out += [f"[sweep] FAILED {o.run_id} (after {o.attempts} attempts): {o.error}" for o in self.failed]
        return out


def run_plan(
    configs: Iterable[RunConfig],
    executor: cf.Executor,
    root=None,
    device: str | None = None,
    keep_model: Callable[[RunConfig], bool] | set[str] | None = None,
    retries: int = 1,
    log: Callable[[str], None] | None = None,
) -> Summary:
    """Every distinct run of ``configs`` through ``executor``, each as :func:`run_task`; a failed run is
    submitted again up to ``retries`` times. ``keep_model``: the run_ids (or a predicate) whose model is stored.
    ``log`` gets one progress line per finished task."""
    check_range("retries", retries, low=0)
    root = str(store.results_root(root).resolve())
    unique = list({c.run_id: c for c in configs}.values())
    keeps = _keep_predicate(keep_model)
    environ = env.current(FORWARDED_ENV)
    summary = Summary({c.run_id: Outcome(c.run_id, "pending", attempts=0) for c in unique})
    by_id = {c.run_id: c for c in unique}

    def submit(cfg: RunConfig) -> cf.Future:
        summary.outcomes[cfg.run_id].attempts += 1
        try:
            return executor.submit(run_task, cfg, root, device, keeps(cfg), environ)
        except Exception as err:  # noqa: BLE001 - a broken pool, a lost cluster: this run failed, report it
            future: cf.Future = cf.Future()
            future.set_result(Outcome(cfg.run_id, "failed", error=describe(err)))
            return future

    pending = {submit(c): c.run_id for c in unique}
    finished = 0
    while pending:
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for future in done:
            run_id = pending.pop(future)
            outcome = _outcome_of(future, run_id)
            attempts = summary.outcomes[run_id].attempts
            outcome.attempts = attempts
            if outcome.status == "failed" and attempts <= retries:
                if log:
                    log(f"[sweep] retrying {run_id} ({outcome.error})")
                pending[submit(by_id[run_id])] = run_id
                continue
            summary.outcomes[run_id] = outcome
            finished += 1
            if log:
                detail = f" {outcome.error}" if outcome.error else ""
                log(f"[sweep] {finished}/{len(unique)} {outcome.status:7s} {run_id:32s} {outcome.seconds:7.1f} s {outcome.worker}{detail}")
    return summary


def _outcome_of(future: cf.Future, run_id: str) -> Outcome:
    """The task's Outcome, or a failed one when the worker itself died (the task never raises)."""
    try:
        return future.result()
    except BaseException as err:  # noqa: BLE001 - a lost worker, a cancelled job: the run failed
        return Outcome(run_id, "failed", error=describe(err))


def _keep_predicate(keep_model) -> Callable[[RunConfig], bool]:
    if keep_model is None:
        return lambda cfg: False
    if callable(keep_model):
        return keep_model
    ids = set(keep_model)
    return lambda cfg: cfg.run_id in ids


# ---------------------------------------------------------------------------------------------- executors
def _pin_gpu(queue) -> None:
    """Process-pool initializer: take one GPU index off ``queue`` before torch is imported in this worker."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(queue.get())


def gpu_count() -> int:
    """GPUs visible here (without initializing CUDA in this process)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_executor(workers: int) -> cf.Executor:
    """``workers`` fresh processes on this machine; with several GPUs, worker i sees only GPU i mod count."""
    import multiprocessing as mp

    check_range("--workers", workers, low=1)
    ctx = mp.get_context("spawn")
    gpus = gpu_count()
    if gpus <= 1:
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    queue = ctx.Queue()
    for i in range(workers):
        queue.put(i % gpus)
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pin_gpu, initargs=(queue,))


class DaskExecutor(cf.Executor):
    """``concurrent.futures`` over a Dask cluster: ``scheduler`` is an address, else a ``LocalCluster`` of
    ``workers`` processes (one thread each) is started and closed with the executor."""

    def __init__(self, scheduler: str | None = None, workers: int = 1):
        from distributed import Client, LocalCluster

        self.cluster = None
        if scheduler is None:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                        silence_logs=logging.ERROR)
            scheduler = self.cluster
        self.client = Client(scheduler)
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class SubmititExecutor(cf.Executor):
    """``concurrent.futures`` over submitit: one Slurm job per task (``cluster="slurm"``), or submitit's local
    executor (``cluster="local"``, for tests and single machines). At most ``max_jobs`` jobs are submitted and
    not yet finished at a time; a thread per such job submits it and waits for its result."""

    def __init__(self, folder: str | os.PathLike, cluster: str = "slurm", partition: str | None = None,
                 gpus_per_job: int = 1, time_limit: int = 24 * 60, cpus_per_task: int | None = None, max_jobs: int = 256):
        import submitit

        check_range("--gpus-per-job", gpus_per_job, low=0)
        check_range("--time-limit", time_limit, low=1)
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        params: dict = {"timeout_min": time_limit, "gpus_per_node": gpus_per_job, "name": "randweights"}
        if cpus_per_task:
            params["cpus_per_task"] = cpus_per_task
        if partition:
            params["slurm_partition"] = partition
        self.executor.update_parameters(**params)
        check_range("--workers", max_jobs, low=1)
        self._waiters = cf.ThreadPoolExecutor(max_workers=max_jobs)

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        return self._waiters.submit(lambda: self.executor.submit(fn, *args, **kwargs).result())

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._waiters.shutdown(wait=wait, cancel_futures=cancel_futures)


DEFAULT_WORKERS = {"local": 1, "dask": 2, "slurm": 256}


def make_executor(kind: str, workers: int | None = None, scheduler: str | None = None, partition: str | None = None,
                  gpus_per_job: int = 1, time_limit: int = 24 * 60, folder: str | os.PathLike = "sweep-logs") -> cf.Executor:
    """The executor the CLI's ``--executor`` names. ``workers``: local processes, Dask LocalCluster workers, or
    Slurm jobs in flight at a time (defaults :data:`DEFAULT_WORKERS`)."""
    if kind not in EXECUTORS:
        raise ConfigError("--executor", kind, "one of " + ", ".join(EXECUTORS))
    workers = DEFAULT_WORKERS[kind] if workers is None else workers
    check_range("--workers", workers, low=1)
    if kind == "local":
        return local_executor(workers)
    if kind == "dask":
        return DaskExecutor(scheduler, workers)
    try:
        return SubmititExecutor(folder, "slurm", partition, gpus_per_job, time_limit, max_jobs=workers)
    except RuntimeError as err:  # submitit: no srun / sbatch here
        raise ConfigError("--executor", kind, f"local or dask here ({str(err).strip()})") from None
