"""Check kit on a GPU in one command, in at most 8 minutes:

    make gpu-check                 # = make cifar10, then python bench/gpu_check.py

Four steps, each in its own process under its own time limit (they add up to 7.5 minutes):

  1. the tests that need a real GPU   python -m pytest -m cuda (tests marked @pytest.mark.cuda)
  2. the throughput benchmark         bench/throughput.py --device cuda
  3. airbench's method, kit vs plain  bench/airbench_method.py --device cuda
  4. airbench94 on one fold           kit train recipes/cifar10/airbench94.yaml --folds 0 --device cuda,
                                      into a temporary store: the fold's held-out accuracy (its oof.npz,
                                      through the recipe's TTA) and its training seconds (fold.json)

The results are printed as one table and written as JSON and Markdown to $OUT, when set, else
bench/results/, as gpu-check-<UTC date and time>.{json,md}. Exit code 2 (one line, nothing run)
where torch sees no CUDA device, 1 if a step failed or ran out of time, else 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone without installing

from kit import fileio  # noqa: E402

RECIPE = "recipes/cifar10/airbench94.yaml"
# seconds per step: 450 in all, under the 8 minutes with room for start-up and the report
LIMITS = {"cuda tests": 90, "throughput": 75, "airbench method": 75, "airbench94 fold 0": 210}


@dataclass
class Row:
    step: str
    status: str  # ok, failed (exit code n), timed out
    seconds: float
    result: str  # the step's figures, or the last line of its output when it failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "bench" / "results"),
                        help="folder for gpu-check-<date>.json and .md (default: $OUT, else bench/results)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False); run it on a machine with a GPU",
              file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0)
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rows = []
    with tempfile.TemporaryDirectory() as store:
        steps = {
            "cuda tests": ([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda"], pytest_summary),
            "throughput": ([python, "bench/throughput.py", "--device", "cuda"], bench_ratios),
            "airbench method": ([python, "bench/airbench_method.py", "--device", "cuda"], bench_ratios),
            "airbench94 fold 0": ([python, "-m", "kit", "train", RECIPE, "--folds", "0", "--device", "cuda",
                                   "--store", store], lambda output: fold_result(Path(store))),
        }
        for name, (command, summarise) in steps.items():
            rows.append(run_step(name, command, LIMITS[name], summarise, env))
            print(f"{name}: {rows[-1].status}, {rows[-1].seconds:.0f} s, {rows[-1].result}", flush=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    heading = f"gpu-check {stamp}: {device}, torch {torch.__version__}"
    print_table(heading, rows)
    for path in write_report(rows, args.out, stamp, heading):
        print(f"written: {path}")
    return 0 if all(row.status == "ok" for row in rows) else 1


def run_step(name: str, command: list[str], limit: float, summarise, env: dict) -> Row:
    """Run one step in its own process; its row says how it ended, how long it took, and its figures.

    A step that fails may still have figures (a benchmark that missed its target prints its ratios,
    pytest its counts): they are kept; otherwise the result is the output's last line."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return Row(name, "timed out", time.perf_counter() - started, f"over its {limit:.0f} s limit")
    seconds, output = time.perf_counter() - started, done.stdout + done.stderr
    status = "ok" if done.returncode == 0 else f"failed (exit code {done.returncode})"
    try:
        result = summarise(output)
    except (OSError, ValueError, KeyError, StopIteration):
        result = last_line(output)
    return Row(name, status, seconds, result)


def last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def pytest_summary(output: str) -> str:
    """'12 passed, 1 skipped' from pytest's last line."""
    found = re.findall(r"\d+ (?:passed|failed|skipped|errors?|deselected)", output)
    if not found:
        raise ValueError("no pytest summary")
    return ", ".join(item for item in found if "deselected" not in item)


def bench_ratios(output: str) -> str:
    """'training 0.991, inference 1.004': each phase's judged ratio, from a benchmark's output."""
    phase, found = None, []
    for line in output.splitlines():
        if header := re.match(r"(training|inference): ", line):
            phase = header[1]
        elif ratio := re.search(r"median of the rounds' ratios: ([\d.]+)", line):
            found.append(f"{phase} {ratio[1]}")
    if not found:
        raise ValueError("no ratio in the output")
    accuracy = re.search(r"held-out accuracy after the last run: (.*)", output)
    return ", ".join(found) + (f"; accuracy {accuracy[1]}" if accuracy else "")


def fold_result(store: Path) -> str:
    """The fold's held-out accuracy (oof.npz, through the recipe's TTA) and its training seconds (fold.json)."""
    fold_dir = next(store.glob("*/models/airbench94/seed0/fold0"))
    record = json.loads((fold_dir / "fold.json").read_text())
    oof = np.load(fold_dir / "oof.npz", allow_pickle=False)
    labels = labels_of(oof["ids"])
    accuracy = float((oof["probs"].argmax(1) == labels).mean())
    epochs = len(record["history"])
    return (f"accuracy {accuracy:.4f} (with TTA; {record['val_acc']:.4f} without), "
            f"{record['seconds']:.1f} s training ({record['seconds'] / epochs:.2f} s/epoch, {epochs} epochs)")


def labels_of(ids: np.ndarray) -> np.ndarray:
    """The class indices of these training ids, as kit reads them (the competition's labels)."""
    from kit.competition import load_competition
    from kit.recipe import load_recipe

    data = load_competition(load_recipe(ROOT / RECIPE).competition_spec)
    position = {str(i): n for n, i in enumerate(data.train_ids)}
    return data.train_labels[[position[str(i)] for i in ids]]


def print_table(heading: str, rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=heading)
    for column in ("step", "status", "seconds", "result"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for row in rows:
        table.add_row(row.step, row.status, f"{row.seconds:.0f}", row.result)
    Console().print(table)


def write_report(rows: list[Row], folder: Path, stamp: str, heading: str) -> list[Path]:
    """gpu-check-<stamp>.json (the rows) and .md (a table) in `folder`; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"gpu-check-{stamp}"
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    fileio.write_json(json_path, {"heading": heading, "rows": [asdict(r) for r in rows]})
    lines = [f"# {heading}", "", "| step | status | seconds | result |", "| --- | --- | ---: | --- |"]
    lines += [f"| {r.step} | {r.status} | {r.seconds:.0f} | {r.result.replace('|', '/')} |" for r in rows]
    fileio.write_text(md_path, "\n".join(lines) + "\n")
    return [json_path, md_path]


if __name__ == "__main__":
    sys.exit(main())
