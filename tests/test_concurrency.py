"""Several `kit train` processes on one store at once: different recipes train side by side, the
same recipe twice trains once (the second waits on the lock, then finds every fold done)."""

import os
import re
import subprocess
import sys
from pathlib import Path

from kit.store import Store, verify_model
from tests.conftest import write_recipe

REPO = Path(__file__).resolve().parents[1]


def test_three_processes_on_one_store(workdir):
    recipes = workdir / "recipes"
    a = write_recipe(recipes, "a", train__epochs=3)
    b = write_recipe(recipes, "b", model={"arch": "resnet_small", "params": {"widths": [8]}})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    commands = [[a, "--wait"], [b], [a, "--wait"]]
    procs = [subprocess.Popen([sys.executable, "-m", "kit", "train", *map(str, args)], cwd=workdir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for args in commands]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    trained = [re.search(r"(\d+) folds trained, (\d+) skipped", out).groups() for out in outputs]
    assert trained[1] == ("2", "0")
    assert sorted([trained[0], trained[2]]) == [("0", "2"), ("2", "0")]  # model a trained exactly once
    store = Store(workdir / "store")
    for name in ("a", "b"):
        assert verify_model(store.model_dir("digits", name)) == []
        assert store.load_member("digits", name).manifest.status == "complete"
