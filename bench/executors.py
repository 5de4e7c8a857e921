"""kit train's executors on this machine: two recipes x 2 seeds x 2 folds on digits, serially, with
--executor process and with --executor ray (a local Ray), each through the real command line into its
own store, in one run (docs/distributed.md).

    python bench/executors.py               # 4 epochs per job, 2 workers (2 cores here)
    python bench/executors.py --epochs 8 --workers 2

Prints each executor's wall time and its ratio to the serial run's; how far its predictions are from
the serial run's (each job of an executor runs with cores // workers torch threads, the serial run with
torch's default: so not bit for bit, and the table says by how much); the start-up of a local Ray and
the round trip of an empty Ray task; and Ray's cost per job against process workers.
"""

from __future__ import annotations

import argparse
import os
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

RECIPES = {
    "a": {"model": {"arch": "vgg_small", "params": {"widths": [16, 32], "convs_per_stage": 1}}},
    "b": {"model": {"arch": "resnet_small", "params": {"widths": [16, 32]}}},
}


def write_recipes(folder: Path, epochs: int) -> list[Path]:
    paths = []
    for name, extra in RECIPES.items():
        recipe = {"competition": "digits", **extra, "cv": {"folds": 2, "seed": 0},
                  "train": {"epochs": epochs, "seed": [0, 1], "batch_size": 64,
                            "optimizer": {"name": "adam", "lr": 0.003}, "scheduler": {"name": "cosine"}}}
        paths.append(folder / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(recipe))
    return paths


def timed_train(paths: list[Path], store: Path, cwd: Path, *options: str) -> float | str:
    """The wall time of `kit train` through the command line; the error line instead when it failed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "kit", "train", *map(str, paths), "--store", str(store), *options],
                         cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        return (run.stderr.strip().splitlines() or run.stdout.strip().splitlines() or ["no output"])[-1]
    return seconds


def compare(reference: Path, other: Path) -> tuple[float, float]:
    """(the largest |p - p_serial| over every OOF and test probability, the share of rows with the same argmax)."""
    worst, same, rows = 0.0, 0, 0
    for name in RECIPES:
        a, b = Store(reference).model_dir("digits", name), Store(other).model_dir("digits", name)
        assert verify_model(b) == [], verify_model(b)
        for path in a.rglob("*.npz"):
            with np.load(path) as x, np.load(b / path.relative_to(a)) as y:
                worst = max(worst, float(np.abs(x["probs"] - y["probs"]).max()))
                same += int((x["probs"].argmax(1) == y["probs"].argmax(1)).sum())
                rows += len(x["probs"])
    return worst, same / rows


def ray_costs(cpus: int) -> tuple[float, float]:
    """(seconds to start a local Ray, milliseconds per empty task's round trip, the mean of 20)."""
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - started
    noop = ray.remote(lambda: None)
    ray.get(noop.remote())  # a worker process started
    started = time.perf_counter()
    for _ in range(20):
        ray.get(noop.remote())
    round_trip = (time.perf_counter() - started) / 20 * 1000
    ray.shutdown()
    return start_s, round_trip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kit-executors-") as tmp:
        base = Path(tmp)
        paths = write_recipes(base, args.epochs)
        jobs = len(RECIPES) * 2 * 2
        started_load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        # the competition decoded once before any timing, so that no run pays for it
        subprocess.run([sys.executable, "-m", "kit", "prepare", "digits"], cwd=base, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        walls = {"serial": timed_train(paths, base / "serial", base)}
        walls["process"] = timed_train(paths, base / "process", base, "--executor", "process", "--workers",
                                       str(args.workers))
        start_s = round_trip = None
        try:
            import ray  # noqa: F401
            walls["ray"] = timed_train(paths, base / "ray", base, "--executor", "ray", "--workers", str(args.workers))
            if not isinstance(walls["ray"], str):
                start_s, round_trip = ray_costs(args.workers)
        except ImportError:
            pass
        print(f"{len(RECIPES)} recipes x 2 seeds x 2 folds = {jobs} jobs, {args.epochs} epochs each, "
              f"{os.cpu_count()} cores, {args.workers} workers")
        print(f"{'executor':<9} {'wall s':>8} {'vs serial':>10} {'max |dp|':>10} {'same argmax':>12}")
        for name, wall in walls.items():
            if isinstance(wall, str):
                print(f"{name:<9} failed: {wall}")
                continue
            worst, same = (0.0, 1.0) if name == "serial" else compare(base / "serial", base / name)
            print(f"{name:<9} {wall:8.1f} {walls['serial'] / wall:9.2f}x {worst:10.2e} {same:12.4f}")
        print(f"load average (1, 5, 15 min) at the start {started_load}, at the end "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (the machine is shared)")
        if start_s is not None:
            print(f"local Ray start-up {start_s:.1f} s; an empty task's round trip {round_trip:.1f} ms; "
                  f"ray - process: {(walls['ray'] - walls['process']) / jobs:+.2f} s per job "
                  f"(start-up included)")
        else:
            print("ray: not measured (not installed, or it did not start)")


if __name__ == "__main__":
    main()
