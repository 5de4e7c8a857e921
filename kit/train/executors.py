"""Where kit train's jobs run: one (recipe, seed, fold) each (kit/train/run.py: plan -> jobs -> finish).

    serial    in this process, one after the other (the default)
    process   in N local worker processes (no extra dependency)
    ray       one Ray task per job, on a local Ray or a cluster (pip install 'kit[ray]'; docs/distributed.md)

An executor is told the jobs and a `done(job, record)` callback, which it calls in this process as each
job's fold lands in the store (the driver reports it, finishes a model whose last job it was, and tells
kit tune's pruner); an exception from `done` stops it: jobs not started are dropped, running ones end first.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable

from ..errors import KitError
from ..progress import SILENT, Reporter
from .run import TrainJob, run_job

Done = Callable[[TrainJob, dict], None]

EXECUTORS: dict[str, type] = {}


def register_executor(cls):
    EXECUTORS[cls.name] = cls
    return cls


def create_executor(name: str, workers: int | None = None, address: str | None = None):
    """The executor called `name`; an unknown name, or an option it does not take, is one clear error."""
    if name not in EXECUTORS:
        from ..errors import did_you_mean

        raise KitError(f"--executor: '{name}' is not one of {', '.join(EXECUTORS)}{did_you_mean(name, list(EXECUTORS))}")
    if workers is not None and workers < 1:
        raise KitError(f"--workers: expected at least 1, got {workers}")
    return EXECUTORS[name](workers=workers, address=address)


def _on_this_machine(name: str, address: str | None) -> None:
    if address is not None:
        raise KitError(f"--address: only --executor ray joins a cluster; '{name}' runs on this machine")


@register_executor
class SerialExecutor:
    """Every job in this process, in order, with the plan's data already in memory: kit train as it always was."""

    name = "serial"

    def __init__(self, workers: int | None = None, address: str | None = None):
        _on_this_machine(self.name, address)
        if workers not in (None, 1):
            raise KitError("--workers: --executor serial runs one job at a time; use --executor process or ray")

    def run(self, jobs: list[TrainJob], done: Done, reporter: Reporter = SILENT) -> None:
        epochs = sum(job.recipe.train.epochs for job in jobs)
        names = sorted({job.recipe.name for job in jobs}, key=[j.recipe.name for j in jobs].index)
        reporter.start("train", ", ".join(names), total=epochs)
        try:
            for job in jobs:
                n_folds = job.recipe.cv.folds
                reporter.advance("train", 0, description=f"{job.recipe.name} seed {job.seed} fold {job.fold} of {n_folds}")
                done(job, run_job(job, reporter))
        finally:
            reporter.finish("train")


@register_executor
class ProcessExecutor:
    """Jobs in `workers` local worker processes (default: one per core), each job with cores // workers torch
    threads so that the workers together do not oversubscribe the machine.

    The workers start fresh (from a fork server: no OpenMP pool or lock inherited from this process) and are
    kept for the run; each reads the data from the decoded cache once per recipe. A worker that dies (killed, out of memory)
    takes its pool down: the unfinished jobs go to a new pool, each at most `max_retries` more times, and
    resume from their epoch checkpoints."""

    name = "process"

    def __init__(self, workers: int | None = None, address: str | None = None, threads: int | None = None,
                 max_retries: int = 3):
        _on_this_machine(self.name, address)
        cores = os.cpu_count() or 1
        self.workers = workers or cores
        self.threads = threads or max(1, cores // self.workers)
        self.max_retries = max_retries

    def run(self, jobs: list[TrainJob], done: Done, reporter: Reporter = SILENT) -> None:
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        board = JobBoard(jobs, reporter, f"{self.workers} worker processes, {self.threads} threads each")
        pending, tries = list(jobs), {job_key(job): 0 for job in jobs}
        try:
            while pending:
                workers = min(self.workers, len(pending))
                with ProcessPoolExecutor(workers, mp_context=_worker_start()) as pool:
                    futures = {pool.submit(run_job, replace(job, threads=self.threads)): job for job in pending}
                    pending = []
                    try:
                        while futures:
                            landed, _ = wait(futures, timeout=1.0, return_when=FIRST_COMPLETED)
                            for future in landed:
                                job = futures.pop(future)
                                try:
                                    record = future.result()
                                except BrokenProcessPool:  # a worker died: this job goes to the next pool
                                    tries[job_key(job)] += 1
                                    if tries[job_key(job)] > self.max_retries:
                                        raise KitError(f"{job.label}: its worker process died {tries[job_key(job)]} "
                                                       f"times (killed, or out of memory?); finished folds are kept, "
                                                       f"rerun the same command to continue") from None
                                    pending.append(job)
                                    continue
                                board.landed(job)
                                done(job, record)
                            board.show()
                    except BaseException:
                        for future in futures:  # not started: dropped; running: the pool's exit waits for them
                            future.cancel()
                        raise
                if pending:
                    reporter.message(f"a worker process died; {len(pending)} unfinished job(s) go to new workers "
                                     f"(each resumes from its last finished epoch)")
        finally:
            board.close()


@register_executor
class RayExecutor:
    """One Ray task per job, asking for the recipe's `resources:` (cpus, gpus; fractional GPUs share one), with
    `max_retries` so that a task whose worker dies runs again (resuming from its epoch checkpoint).

    Without an address it starts a local Ray on this machine (`workers`: its CPUs, default all); with one it
    joins a running cluster (`ray start --head` on one node, `ray start --address HEAD:6379` on the others).
    The store must be on a path every node sees; each task checks that it does (run.check_same_store)."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, max_retries: int = 3):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise KitError("--executor ray needs Ray, which is not installed: pip install 'kit[ray]' "
                           "(or pip install 'ray>=2.40')") from None
        if address is not None and workers is not None:
            raise KitError("--workers: a Ray cluster's size is its nodes' CPUs (ray start --num-cpus); "
                           "--workers only sizes the local Ray that kit starts without --address")
        self.workers, self.address, self.max_retries = workers, address, max_retries

    def start(self):
        """Ray, connected: the cluster at the address, else a local Ray (started once per process, then reused)."""
        import logging

        import ray

        import kit

        if not ray.is_initialized():
            # kit's own code travels with the tasks, so every worker runs exactly the driver's version of it
            runtime_env = {"py_modules": [kit]}
            options = dict(runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=False,
                           include_dashboard=False, configure_logging=True)
            try:
                if self.address is None:
                    ray.init(num_cpus=self.workers or os.cpu_count(), **options)
                else:
                    ray.init(address=self.address, **options)
            except ConnectionError as exc:
                raise KitError(f"--address {self.address}: no Ray cluster answers there ({exc}); start one with "
                               f"ray start --head (docs/distributed.md)") from None
            except Exception as exc:  # Ray raises a bare Exception when its raylet dies during start-up
                raise KitError(f"{'Ray at ' + self.address if self.address else 'a local Ray'} did not start "
                               f"({str(exc).splitlines()[0]}); on a busy machine Ray's agents can miss its fixed "
                               f"start-up timeout (ray-project/ray#65983, logs in /tmp/ray/session_latest/logs): "
                               f"retry, or start Ray once with ray start --head and pass --address auto") from None
        return ray

    def run(self, jobs: list[TrainJob], done: Done, reporter: Reporter = SILENT) -> None:
        ray = self.start()
        cluster = ray.cluster_resources()
        where = (f"Ray at {self.address}" if self.address else "a local Ray") + \
            f", {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs"
        board = JobBoard(jobs, reporter, where)
        task = ray.remote(_ray_job)
        refs = {}
        for job in jobs:
            res = job.recipe.resources
            refs[task.options(num_cpus=res.cpus, num_gpus=res.gpus, max_retries=self.max_retries,
                              retry_exceptions=False).remote(replace(job, threads=max(1, int(res.cpus))))] = job
        try:
            while refs:
                landed, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                for ref in landed:
                    job = refs.pop(ref)
                    board.landed(job)
                    done(job, _ray_result(ray, ref, job))
                board.show()
        except BaseException:
            for ref in refs:  # not started: dropped; running: interrupted (each resumes from its checkpoint)
                ray.cancel(ref)
            ray.wait(list(refs), num_returns=len(refs), timeout=60)  # the model's lock outlives every task
            raise
        finally:
            board.close()


def _worker_start():
    """How worker processes start: forked from a fork server that imported kit's training (and torch) once, so
    each worker starts at once yet inherits no threads or locks from this process; spawned where fork is not."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["kit.train.run"])
        return context
    return multiprocessing.get_context("spawn")


def _ray_job(job: TrainJob) -> dict:
    """A Ray task: one job (a module-level function, so that Ray pickles it by reference)."""
    return run_job(job)


def _ray_result(ray, ref, job: TrainJob) -> dict:
    """The task's record; its KitError (a refused store, a diverged run) re-raised as itself, in one line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, KitError):
            raise cause from None
        raise KitError(f"{job.label}: the Ray task failed: {type(cause or exc).__name__}: {cause or exc}") from None
    except ray.exceptions.RayError as exc:  # its worker died more than max_retries times, or its node went away
        raise KitError(f"{job.label}: {type(exc).__name__} on Ray after its retries ({str(exc).splitlines()[0]}); "
                       f"finished folds are kept, rerun the same command to continue") from None


def job_key(job: TrainJob) -> tuple[str, int, int]:
    return job.recipe.name, job.seed, job.fold


class JobBoard:
    """The one progress view of a parallel run: jobs done out of all, which are running and where (read from
    each job's lock: the pid and host of the process holding it), and rich's ETA from the jobs' pace."""

    def __init__(self, jobs: list[TrainJob], reporter: Reporter, where: str):
        self.jobs, self.reporter, self.where = jobs, reporter, where
        self.left = {job_key(job): job for job in jobs}
        reporter.start("train", f"{len(jobs)} jobs on {where}", total=len(jobs))

    def landed(self, job: TrainJob) -> None:
        self.left.pop(job_key(job), None)
        self.reporter.advance("train", 1)

    def show(self) -> None:
        from ..store import Store

        running = []
        for job in self.left.values():
            # the lock file's text, read without locking (a lock taken to look could refuse a job starting now):
            # 'kit pid 123 on host since ...' while a process holds it, empty once released
            path = Store(job.store).job_lock_path(job.recipe.competition_spec.name, job.recipe.name, job.seed, job.fold)
            try:
                held = path.read_text(encoding="utf-8").strip()
            except OSError:
                held = ""
            if held:
                running.append(f"{job.recipe.name} s{job.seed} f{job.fold} ({held.removeprefix('kit ').split(' since')[0]})")
        done = len(self.jobs) - len(self.left)
        text = f"{done}/{len(self.jobs)} jobs done, {len(running)} running"
        if running:
            text += ": " + "; ".join(running[:4]) + (" ..." if len(running) > 4 else "")
        self.reporter.advance("train", 0, description=text)

    def close(self) -> None:
        self.reporter.finish("train")
