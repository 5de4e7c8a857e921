"""bench/gpu_check.py on the CPU: it refuses without CUDA, and its report says what the rows say."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_refuses_in_one_line_and_writes_nothing(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}  # no GPU, even on a machine with one
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no CUDA device" in done.stderr and not done.stdout
    assert not (tmp_path / "out").exists()


def test_the_report_is_the_rows_as_json_and_a_markdown_table(tmp_path):
    module = gpu_check()
    rows = [module.Row("cuda tests", "ok", 41.2, "9 passed"),
            module.Row("throughput", "failed (exit code 1)", 60.0, "training 0.931, inference 1.002"),
            module.Row("airbench94 fold 0", "timed out", 210.4, "over its 210 s limit | x")]
    json_path, md_path = module.write_report(rows, tmp_path / "results", "2026-11-23T101500Z", "gpu-check: H200")
    assert json_path.name == "gpu-check-2026-11-23T101500Z.json" and md_path.suffix == ".md"
    saved = json.loads(json_path.read_text())
    assert saved["heading"] == "gpu-check: H200" and [module.Row(**r) for r in saved["rows"]] == rows
    lines = md_path.read_text().splitlines()
    assert lines[0] == "# gpu-check: H200" and lines[2] == "| step | status | seconds | result |"
    assert lines[4:] == ["| cuda tests | ok | 41 | 9 passed |",
                         "| throughput | failed (exit code 1) | 60 | training 0.931, inference 1.002 |",
                         "| airbench94 fold 0 | timed out | 210 | over its 210 s limit / x |"]  # a | would split the cell


def test_the_figures_are_read_from_each_steps_output():
    module = gpu_check()
    assert module.pytest_summary("....\n9 passed, 2 skipped, 310 deselected in 40.1s\n") == "9 passed, 2 skipped"
    bench = ("device: NVIDIA H200, amp torch.bfloat16; 16 CPU cores\ntraining: 7936 images per pass, 8 rounds\n"
             "  kit 9000 images/s, hand-written 9100 images/s (median wall time); kit / hand-written, median of the "
             "rounds' ratios: 0.989 (target >= 0.95)\ninference: 10000 images per pass, 16 rounds\n"
             "  kit ... median of the rounds' ratios: 1.004 (target >= 0.95)\n")
    assert module.bench_ratios(bench) == "training 0.989, inference 1.004"
    method = ("training: recipes/cifar10/airbench94.yaml's method, ...\n  kit ... median of the rounds' ratios: "
              "0.991 (target >= 0.98)\n  held-out accuracy after the last run: kit 0.8812, hand-written 0.8790\n")
    assert module.bench_ratios(method) == "training 0.991; accuracy kit 0.8812, hand-written 0.8790"
