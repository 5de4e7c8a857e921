"""SIGKILL `kit train` at random moments, rerun until it finishes: the store is whole after every
kill, complete at the end of every run, and its predictions equal an uninterrupted run's.

The trainers are forked children of the test process (torch already imported), so a kill lands
in training rather than in Python's start-up; bench/kill_test.py does the same through the
real `kit train` command line.
"""

import multiprocessing
import os
import random
import signal
import time

import numpy as np
import pytest

from kit.store import Store, verify_model
from tests.conftest import write_recipe

RECIPE = dict(train__epochs=3, cv={"folds": 2, "seed": 0},
              model={"arch": "vgg_small", "params": {"widths": [8, 16], "dropout": 0.2}})
KILLS = 20


def _train(path, store_root):
    import torch

    from kit.recipe import load_recipe
    from kit.train import train_recipe

    torch.set_num_threads(1)  # the same arithmetic in every child, and no OpenMP pool across fork
    train_recipe(load_recipe(path), Store(store_root))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_at_random_moments(workdir):
    ctx = multiprocessing.get_context("fork")
    store = Store(workdir / "store")

    def run(name, timeout=None):
        child = ctx.Process(target=_train, args=(write_recipe(workdir / "recipes", name, **RECIPE), store.root))
        child.start()
        child.join(timeout)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            child.join()
            return None
        assert child.exitcode == 0
        return True

    # the reference runs here, in the parent: that also imports everything the trainer needs, so
    # the forked children start training at once (and the kill moments fall in training)
    import torch

    threads = torch.get_num_threads()
    started = time.perf_counter()
    try:
        _train(write_recipe(workdir / "recipes", "reference", **RECIPE), store.root)
    finally:
        torch.set_num_threads(threads)
    reference = store.load_member("digits", "reference").oof
    # how long a child takes, uninterrupted: kill moments are drawn from that span
    child_started = time.perf_counter()
    assert run("uninterrupted_child")
    duration = time.perf_counter() - child_started
    assert np.array_equal(store.load_member("digits", "uninterrupted_child").oof, reference)

    rng = random.Random(0)
    kills = runs = 0
    while kills < KILLS:
        name = f"killed{runs}"
        while run(name, timeout=rng.uniform(0.05, duration)) is None:
            kills += 1
            assert verify_model(store.model_dir("digits", name)) == []
        runs += 1
        member = store.load_member("digits", name)  # complete, or this raises
        assert member.manifest.status == "complete"
        assert verify_model(store.model_dir("digits", name)) == []
        assert np.array_equal(member.oof, reference)
    print(f"\n{kills} kills over {runs} runs; an uninterrupted run takes {duration:.1f} s; "
          f"{time.perf_counter() - started:.1f} s in all")
    assert kills >= KILLS
