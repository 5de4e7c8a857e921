"""Kill `kit train` with SIGKILL at random moments and check that nothing is lost.

    python bench/kill_test.py            # 20 kills (default) over a short digits recipe
    python bench/kill_test.py --kills 50 --seed 1

One uninterrupted `kit train` gives the reference. Then, run after run, a fresh model of the same
recipe (a new name, so the same predictions are expected) is started through the real command
line and SIGKILLed after a random delay drawn from the reference's wall time, rerun and killed
again until a run finishes. After every kill every file in the model's folder must read back
whole; at the end of every run the model must be complete and its out-of-fold predictions equal
to the reference's. Prints the kill count, where the kills landed, and the time taken.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kit.store import Store, verify_model  # noqa: E402

RECIPE = {
    "competition": "digits",
    "model": {"arch": "vgg_small", "params": {"widths": [16, 32], "dropout": 0.2}},
    "cv": {"folds": 3, "seed": 0},
    "train": {"epochs": 4, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.003}},
}


def kit_train(workdir: Path, name: str, env: dict, timeout: float | None) -> bool:
    """True when the run finished, False when it was killed."""
    recipe = workdir / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    proc = subprocess.Popen([sys.executable, "-m", "kit", "train", str(recipe)], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return False
    if proc.returncode != 0:
        raise SystemExit(f"kit train {name} failed with exit code {proc.returncode}:\n{err.decode()}")
    return True


def timed_run(workdir: Path, name: str, env: dict) -> float:
    started = time.perf_counter()
    kit_train(workdir, name, env, None)
    return time.perf_counter() - started


def where(model_dir: Path) -> str:
    """Where in the run a kill landed, from what is on disk."""
    if not (model_dir / "model.json").is_file():
        return "start-up (nothing written yet)"
    folds_done = len(list(model_dir.rglob("fold.json")))
    if folds_done == RECIPE["cv"]["folds"]:
        return "after the last fold, before the model was marked complete (often a rerun's start-up)"
    if list(model_dir.rglob("checkpoint.pt")):
        return f"mid-fold (after {folds_done} finished folds)"
    return f"between epochs or folds ({folds_done} finished folds)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="kit-kill-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "KIT_DATA": str(workdir / "data"), "KIT_STORE": str(workdir / "store"),
               "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # one thread: the same arithmetic every run
        store = Store(workdir / "store")
        started = time.perf_counter()
        kit_train(workdir, "reference", env, None)  # also writes data/digits and the folds
        reference = store.load_member("digits", "reference").oof
        # kill moments are drawn from the wall time of a whole run, measured again whenever a run
        # finishes unkilled (the first run pays for cold caches; the machine's load changes)
        span = timed_run(workdir, "uninterrupted", env)
        print(f"an uninterrupted run: {span:.1f} s (start-up included)")

        kills, runs, landed = 0, 0, collections.Counter()
        while kills < args.kills:
            name = f"killed{runs}"
            model_dir = store.model_dir("digits", name)
            run_started = time.perf_counter()
            first_try = True
            while not kit_train(workdir, name, env, rng.uniform(0.1, span)):
                first_try = False
                kills += 1
                landed[where(model_dir)] += 1
                problems = verify_model(model_dir) if model_dir.exists() else []
                if problems:
                    raise SystemExit(f"kill {kills}: the store is damaged: {problems}")
            if first_try:
                span = time.perf_counter() - run_started
            runs += 1
            member = store.load_member("digits", name)
            same = np.array_equal(member.oof, reference)
            accuracy = float((member.oof.argmax(1) == (reference.argmax(1))).mean())
            print(f"run {runs}: complete after {kills} kills so far; OOF identical to the reference: {same}")
            if not same:
                raise SystemExit(f"run {runs}: its out-of-fold predictions differ (argmax agreement {accuracy:.4f})")
        print(f"\n{kills} SIGKILLs over {runs} runs, {time.perf_counter() - started:.0f} s; every run ended complete "
              f"with OOF predictions identical to the uninterrupted run's.")
        for place, count in landed.most_common():
            print(f"  {count:3d} kills landed at {place}")


if __name__ == "__main__":
    main()
