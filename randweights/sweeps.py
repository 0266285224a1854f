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
import ctypes
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import data, env, models, runs, store
from .config import RunConfig, check_device
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


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device_name(device: str | None, here: bool = False) -> None:
    """``device`` as every worker will be asked for it: a ConfigError naming ``device`` unless it is auto or a
    device type torch knows (cpu, cuda, cuda:N, mps); with ``here`` (workers on this machine) it must also exist
    here (:func:`~randweights.config.check_device`)."""
    if here:
        check_device(device)
        return
    if device is None or device == "auto":
        return
    allowed = "auto, cpu, cuda, cuda:N or mps (checked on each worker)"
    if not isinstance(device, str):
        raise ConfigError("device", device, allowed)
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise ConfigError("device", device, allowed) from None
    if kind not in DEVICE_TYPES:
        raise ConfigError("device", device, allowed)


def check_fits(cfg: RunConfig) -> None:
    """A network too large to build (``width=1e6``) is a ConfigError naming ``width``, before any data loads."""
    dataset = cfg.data.dataset
    if dataset in data.SHAPES:
        models.check_size(cfg.model.arch, data.SHAPES[dataset], data.NUM_CLASSES[dataset], cfg.model.width,
                          cfg.model.bias, cfg.model.affine_bn)


def check_plan(configs: Iterable[RunConfig], root=None, device: str | None = None, here: bool = False) -> Path:
    """Everything a sweep can check before it submits a run, once (not per run, where every run would fail and
    be retried, and on Slurm be submitted first): the device, the results folder (created and tested for
    writing; a file or an empty name is a ConfigError naming ``results``) and every network's size. Returns the
    results folder, resolved."""
    check_device_name(device, here)
    root = env.results_path(root)
    for cfg in {c.run_id: c for c in configs}.values():
        check_fits(cfg)
    store.prepare_folder(root, root)
    return root.resolve()


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
    unique = list({c.run_id: c for c in configs}.values())
    root = str(check_plan(unique, root, device))
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


PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """Make this worker process end when ``parent`` (the sweep) dies, even by SIGKILL: on Linux the kernel sends
    SIGTERM (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread also checks the parent pid every
    ``poll_seconds`` and exits the process when it has changed (the worker was re-parented)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # no prctl: the thread below still ends the worker
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="randweights-parent-watch", daemon=True).start()


def _worker_init(parent: int, queue=None, threads: int | None = None) -> None:
    """Process-pool initializer: end with the sweep (:func:`end_with_parent`), pin a GPU when given ``queue``, use
    ``threads`` CPU threads for torch when given."""
    end_with_parent(parent)
    if queue is not None:
        _pin_gpu(queue)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def gpu_count() -> int:
    """GPUs visible here (without initializing CUDA in this process)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_executor(workers: int, threads: int | None = None) -> cf.Executor:
    """``workers`` fresh processes on this machine; with several GPUs, worker i sees only GPU i mod count.
    ``threads``: torch's CPU threads per worker (None: torch's default, all cores each). The workers end with this
    process (:func:`end_with_parent`), also when it is killed."""
    import multiprocessing as mp

    check_range("--workers", workers, low=1)
    if threads is not None:
        check_range("threads", threads, low=1)
    ctx = mp.get_context("spawn")
    gpus = gpu_count()
    queue = None
    if gpus > 1:
        queue = ctx.Queue()
        for i in range(workers):
            queue.put(i % gpus)
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                  initargs=(os.getpid(), queue, threads))


def threads_per_worker(workers: int) -> int:
    """This machine's cores shared out among ``workers`` processes (at least 1 each)."""
    return max(1, (os.cpu_count() or 1) // workers)


SCHEDULER_TIMEOUT = "20s"
_ADDRESS = re.compile(r"(?:(?:tcp|tls|ucx|ws|wss)://)?[A-Za-z0-9._-]+:\d{1,5}|(?:tcp|tls|ucx|ws|wss)://\[[0-9A-Fa-f:]+\]:\d{1,5}")


def check_scheduler(scheduler: str | None) -> None:
    """``--scheduler``: None (start a LocalCluster) or a scheduler address ``[protocol://]host:port``."""
    if scheduler is None:
        return
    if not isinstance(scheduler, str) or not _ADDRESS.fullmatch(scheduler) or not 0 < int(scheduler.rsplit(":", 1)[1]) < 65536:
        raise ConfigError("--scheduler", scheduler, "a Dask scheduler address [tcp://]host:port, e.g. tcp://host:8786")


class DaskExecutor(cf.Executor):
    """``concurrent.futures`` over a Dask cluster: ``scheduler`` is an address, else a ``LocalCluster`` of
    ``workers`` processes (one thread each) is started and closed with the executor."""

    def __init__(self, scheduler: str | None = None, workers: int = 1):
        from distributed import Client, LocalCluster

        check_scheduler(scheduler)
        self.cluster = None
        if scheduler is None:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                        silence_logs=logging.ERROR)
            scheduler = self.cluster
        try:
            self.client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, ValueError, TypeError) as err:  # no scheduler there, a refused or timed-out connection
            if self.cluster is not None:
                self.cluster.close()
            raise ConfigError("--scheduler", scheduler, f"the address of a running Dask scheduler, e.g. tcp://host:8786 "
                              f"({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None
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


SLURM_DEFAULTS = {"gpus_per_job": 1, "time_limit": 24 * 60}


def check_executor_options(kind: str, workers: int | None = None, scheduler: str | None = None,
                           partition: str | None = None, gpus_per_job: int | None = None, time_limit: int | None = None,
                           folder: str | os.PathLike | None = None) -> None:
    """Every executor option on its own, before anything starts: the executor's name, ranges, and options that
    belong to another executor (``--scheduler`` only with dask; ``--partition``, ``--gpus-per-job``,
    ``--time-limit``, ``--logs`` only with slurm; ``None`` means not given)."""
    if kind not in EXECUTORS:
        raise ConfigError("--executor", kind, "one of " + ", ".join(EXECUTORS))
    if workers is not None:
        check_range("--workers", workers, low=1)
    if scheduler is not None and kind != "dask":
        raise ConfigError("--scheduler", scheduler, "only with --executor dask")
    check_scheduler(scheduler)
    slurm_only = {"--partition": partition, "--gpus-per-job": gpus_per_job, "--time-limit": time_limit, "--logs": folder}
    for flag, value in slurm_only.items():
        if value is not None and kind != "slurm":
            raise ConfigError(flag, value, "only with --executor slurm")
    if gpus_per_job is not None:
        check_range("--gpus-per-job", gpus_per_job, low=0)
    if time_limit is not None:
        check_range("--time-limit", time_limit, low=1)
    if folder is not None and (str(folder) == "" or Path(folder).exists() and not Path(folder).is_dir()):
        raise ConfigError("--logs", str(folder), "a folder (or a path where one can be made)")


def make_executor(kind: str, workers: int | None = None, scheduler: str | None = None, partition: str | None = None,
                  gpus_per_job: int | None = None, time_limit: int | None = None,
                  folder: str | os.PathLike = "sweep-logs") -> cf.Executor:
    """The executor the CLI's ``--executor`` names. ``workers``: local processes, Dask LocalCluster workers, or
    Slurm jobs in flight at a time (defaults :data:`DEFAULT_WORKERS`); ``gpus_per_job`` and ``time_limit``
    (minutes) default to :data:`SLURM_DEFAULTS`."""
    check_executor_options(kind, workers, scheduler, partition, gpus_per_job, time_limit)
    workers = DEFAULT_WORKERS[kind] if workers is None else workers
    gpus_per_job = SLURM_DEFAULTS["gpus_per_job"] if gpus_per_job is None else gpus_per_job
    time_limit = SLURM_DEFAULTS["time_limit"] if time_limit is None else time_limit
    if kind == "local":
        return local_executor(workers)
    if kind == "dask":
        return DaskExecutor(scheduler, workers)
    try:
        return SubmititExecutor(folder, "slurm", partition, gpus_per_job, time_limit, max_jobs=workers)
    except RuntimeError as err:  # submitit: no srun / sbatch here
        raise ConfigError("--executor", kind, f"local or dask here ({str(err).strip()})") from None
