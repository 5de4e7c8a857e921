"""What every benchmark prints about the machine it runs on, and the CIFAR-10 check the CIFAR ones share.

Timings mean little without the load they were taken under, so each benchmark prints these lines
before (and some after) it measures.
"""

from __future__ import annotations

import os
import sys

import torch

from kit.competition import resolve_competition


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def describe() -> str:
    """'2 CPU cores, torch 2.x with 2 threads, load average 0.5, 0.4, 0.3'."""
    return (f"{os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"{load_average()}")


def cifar10_spec(competition: str = "recipes/cifar10/competition.yaml"):
    """The competition spec, or None (with the fix printed) when `make cifar10` has not been run."""
    spec = resolve_competition(competition)
    if not spec.root.is_dir():
        print(f"{spec.root}: not there; run `make cifar10` first", file=sys.stderr)
        return None
    return spec
