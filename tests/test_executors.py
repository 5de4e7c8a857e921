"""kit train's executors: two recipes x 2 seeds x 2 folds through local worker processes and through Ray end
in the store the serial run makes (the same files; the same OOF and test predictions bit for bit, every job
running with one torch thread as the serial reference does); a worker killed mid-job is retried and resumes;
a second kit train beside a running one is refused and changes nothing; a worker that sees another store
refuses in one line.

The Ray tests need Ray (pip install 'kit[ray]'; make test installs it) and are skipped without it; they run a
local Ray with 2 CPUs on loopback only.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kit.errors import KitError, StoreError
from kit.recipe import load_recipe
from kit.store import Store, verify_model
from tests.conftest import write_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"a": dict(train__seed=[0, 1], train__epochs=2),
           "b": dict(train__seed=[0, 1], train__epochs=2, model={"arch": "resnet_small", "params": {"widths": [8]}})}
RUNS = [(s, k) for s in (0, 1) for k in (0, 1)]
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="needs Ray (pip install 'kit[ray]'; make test installs it)")


def _recipes(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_recipe(folder, name, **changes) for name, changes in RECIPES.items()]


@pytest.fixture(scope="module")
def serial_store(tmp_path_factory, digits_root) -> Path:
    """The reference: the serial run, with one torch thread (as each job of the executors below has)."""
    import torch

    from kit.train.run import train_recipes

    base = tmp_path_factory.mktemp("serial")
    old_data, threads = os.environ.get("KIT_DATA"), torch.get_num_threads()
    os.environ["KIT_DATA"] = str(digits_root.parent)
    torch.set_num_threads(1)
    try:
        train_recipes([load_recipe(p) for p in _recipes(base / "recipes")], Store(base / "store"))
    finally:
        torch.set_num_threads(threads)
        os.environ.pop("KIT_DATA") if old_data is None else os.environ.__setitem__("KIT_DATA", old_data)
    return base / "store"


def assert_same_store(reference: Path, other: Path) -> None:
    """The same files in every model folder, and the same predictions, bit for bit."""
    a, b = Store(reference), Store(other)
    for name in RECIPES:
        da, db = a.model_dir("digits", name), b.model_dir("digits", name)
        assert verify_model(db) == []
        assert b.manifest("digits", name).status == "complete"
        files = sorted(str(p.relative_to(da)) for p in da.rglob("*") if p.is_file())
        assert files == sorted(str(p.relative_to(db)) for p in db.rglob("*") if p.is_file())
        for seed, fold in RUNS:
            for split in ("oof.npz", "test.npz"):
                with np.load(da / f"seed{seed}/fold{fold}" / split) as x, np.load(db / f"seed{seed}/fold{fold}" / split) as y:
                    assert np.array_equal(x["ids"], y["ids"])
                    assert np.array_equal(x["probs"], y["probs"]), f"{name} seed {seed} fold {fold} {split}"


def _held_jobs(store: Path) -> list[tuple[int, Path]]:
    """(pid, fold folder) of each job running now past its first epoch: its lock's text names the pid (read
    without locking), its checkpoint is on disk."""
    found = []
    for lock in (store / "digits" / "locks").glob("*/seed*/fold*.lock"):
        text = lock.read_text(encoding="utf-8").strip()
        fold_dir = store / "digits" / "models" / lock.parent.parent.name / lock.parent.name / lock.stem
        if text.startswith("kit pid ") and (fold_dir / "checkpoint.pt").is_file():
            found.append((int(text.split()[2]), fold_dir))
    return found


def _kill_one_worker(store: Path, deadline: float) -> dict:
    """SIGKILL the first worker found mid-job (after its first epoch, before its fold is done)."""
    killed = {}
    while time.monotonic() < deadline and not killed:
        for pid, fold_dir in _held_jobs(store):
            if pid != os.getpid() and not (fold_dir / "fold.json").exists():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.update(pid=pid, fold=fold_dir)
                break
        time.sleep(0.05)
    return killed


def test_process_executor_killed_worker_and_a_second_train(workdir, serial_store):
    """kit train --executor process as a user runs it: a worker SIGKILLed mid-job is replaced and its job
    resumes; a second kit train of the same recipes meanwhile is refused; the store ends equal."""
    from kit.train.run import train_recipes

    paths = _recipes(workdir / "recipes")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "kit", "train", *map(str, paths), "--executor", "process",
                              "--workers", "2"], cwd=workdir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        killed = _kill_one_worker(workdir / "store", time.monotonic() + 900)  # the first job past its first epoch
        # the second kit train, in this process (torch imported already, so it reaches the locks at once) while
        # the first still has jobs to run and holds the models' locks
        assert first.poll() is None
        with pytest.raises(StoreError, match=r"model 'a' is in use by kit pid \d+"):
            train_recipes([load_recipe(p) for p in paths], Store(workdir / "store"))
        assert first.poll() is None, "the first kit train ended before the second reached its lock"
        out = first.communicate(timeout=1200)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert killed, "no worker was found mid-job to kill"
    assert first.returncode == 0, out
    assert "a worker process died" in out
    assert_same_store(serial_store, workdir / "store")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for this module's tests, shut down after them."""
    ray = pytest.importorskip("ray")
    from kit.train.executors import RayExecutor

    try:
        RayExecutor(workers=2).start()
    except KitError as exc:  # Ray's own start-up timeout on an overloaded machine (ray-project/ray#65983)
        pytest.skip(str(exc))
    yield ray
    ray.shutdown()


def _train_on(executor, workdir: Path) -> None:
    from kit.train.run import train_recipes

    train_recipes([load_recipe(p) for p in _recipes(workdir / "recipes")], Store(workdir / "store"),
                  executor=executor)


@needs_ray
def test_ray_executor_equals_serial(workdir, serial_store, local_ray):
    from kit.train.executors import RayExecutor

    _train_on(RayExecutor(workers=2), workdir)
    assert_same_store(serial_store, workdir / "store")


@needs_ray
def test_ray_retries_a_killed_worker(workdir, serial_store, local_ray):
    """A Ray worker SIGKILLed mid-job: Ray runs the task again (max_retries), it resumes from the checkpoint."""
    from kit.train.executors import RayExecutor

    killed = {}
    killer = threading.Thread(target=lambda: killed.update(_kill_one_worker(workdir / "store", time.monotonic() + 900)),
                              daemon=True)
    killer.start()
    _train_on(RayExecutor(workers=2), workdir)
    killer.join(timeout=5)
    assert killed, "no Ray worker was found mid-job to kill"
    assert_same_store(serial_store, workdir / "store")


def test_a_worker_that_sees_another_store_refuses(workdir, serial_store):
    from dataclasses import replace

    from kit.train.run import TrainJob, run_job

    recipe = load_recipe(_recipes(workdir / "recipes")[0])
    manifest = Store(serial_store).manifest("digits", "a")
    job = TrainJob(recipe=recipe, store=str(workdir / "elsewhere"), device="cpu", seed=0, fold=0,
                   recipe_hash=manifest.recipe_hash, folds_hash=manifest.folds_hash,
                   data_fingerprint=manifest.data_fingerprint)
    with pytest.raises(StoreError, match=r"model.json: not found on .*, where the job a seed 0 fold 0 runs: this "
                                         r"worker does not see the store the plan wrote; .*every node mounts"):
        run_job(job)
    assert not (workdir / "elsewhere").exists()  # refused before anything is written
    with pytest.raises(StoreError, match=r"the model's folds hash is \w+, the plan's other: this worker sees another "
                                         r"store"):
        run_job(replace(job, store=str(serial_store), folds_hash="other"))


def test_executor_options_are_checked(workdir, monkeypatch):
    from typer.testing import CliRunner

    from kit.cli import app

    path = _recipes(workdir / "recipes")[0]
    runner = CliRunner()
    for args, message in ((["--executor", "dask"], "--executor: 'dask' is not one of serial, process, ray"),
                          (["--executor", "process", "--address", "x:6379"], "--address: only --executor ray"),
                          (["--executor", "process", "--workers", "0"], "--workers: expected at least 1"),
                          (["--executor", "process", "--full"], "--full refits each seed in this process")):
        result = runner.invoke(app, ["train", str(path), *args])
        assert result.exit_code == 2 and message in result.output, result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = runner.invoke(app, ["train", str(path), "--executor", "ray"])
    assert result.exit_code == 2 and "pip install 'kit[ray]'" in result.output, result.output
    assert not (workdir / "store").exists()


def test_resources_are_no_part_of_the_hash(workdir):
    plain = load_recipe(write_recipe(workdir / "recipes", "r"))
    asking = load_recipe(write_recipe(workdir / "recipes", "r", resources={"cpus": 2, "gpus": 0.5}))
    assert asking.resources.gpus == 0.5 and plain.hash == asking.hash
    with pytest.raises(KitError, match=r"resources.cpus"):
        load_recipe(write_recipe(workdir / "recipes", "r", resources={"cpus": 0}))


def test_serial_jobs_use_their_own_plans_context(workdir, monkeypatch):
    # a store named by a relative path (kit train's default), and two models of one recipe hash (the name is not
    # in it): every job must get its own plan's context, with nothing prepared twice
    import kit.train.run as run

    prepared, used = [], []
    real_prepare, real_job_context = run.prepare, run.job_context
    monkeypatch.setattr(run, "prepare", lambda recipe, *a, **kw: prepared.append(recipe.name) or real_prepare(recipe, *a, **kw))

    def spy(job):
        context = real_job_context(job)
        used.append((job.recipe.name, context.recipe.name))
        return context
    monkeypatch.setattr(run, "job_context", spy)
    first, second = (load_recipe(write_recipe(workdir / "recipes", name)) for name in ("twin", "twin2"))
    assert first.hash == second.hash
    run.train_recipes([first, second], Store("store"))
    assert sorted(prepared) == ["twin", "twin2"]
    assert sorted(used) == [("twin", "twin"), ("twin", "twin"), ("twin2", "twin2"), ("twin2", "twin2")]
