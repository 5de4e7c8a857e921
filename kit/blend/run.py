"""`kit blend`: members from the store -> blended OOF and test probabilities -> submission + report.

Reads only the store: each member's per-fold predictions, the folds (with labels) and the copy
of the sample submission kept there. Every blender is scored on the OOF rows by the same
folds the members were trained on: a blender that learns (a stacker) is fit on k-1 folds and
scores the held-out one, so no row is scored by a blender that saw its label.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone

from ..errors import BlendError
from ..paths import submissions_dir
from ..progress import SILENT, Reporter
from ..report import classification_metrics, report_dir, write_report
from ..store import Member, Store
from ..submit import submission_format, write_submission
from .base import Blender
from .registry import create_blender, list_blenders

METRICS = {"accuracy": True, "macro_f1": True, "log_loss": False}  # name -> higher is better


@dataclass
class BlendResult:
    competition: str
    method: str  # the blender whose submission was written
    members: list[str]
    member_metrics: dict[str, dict]
    blender_metrics: dict[str, dict]  # every blender fitted, scored on OOF (nested where it learns)
    fit_seconds: dict[str, float]
    described: dict  # the written blender's weights / selection
    submission: Path
    report_files: list[Path] = field(default_factory=list)

    @property
    def blend_metrics(self) -> dict:
        return self.blender_metrics[self.method]


def select_members(store: Store, competition: str, patterns: list[str] | None) -> list[str]:
    """Model names matching any of `patterns` (names or globs); every finished model when None."""
    known = store.model_names(competition)
    finished = [m for m in known if store.manifest(competition, m).get("status") == "complete"]
    if not patterns:
        if not finished:
            raise BlendError(f"{store.competition_dir(competition)}: no finished model to blend; run kit train first")
        return finished
    chosen = []
    for pattern in patterns:
        hits = [m for m in known if fnmatch.fnmatchcase(m, pattern)]
        if not hits:
            store.manifest(competition, pattern)  # raises the 'no model ... did you mean' error
        chosen += [m for m in hits if m not in chosen]
    return chosen


def check_compatible(members: list[Member]) -> None:
    """Members must share data, folds, classes and test ids, or their rows do not line up."""
    first = members[0]
    for m in members[1:]:
        for key, what in (("data_fingerprint", "competition data"), ("folds_hash", "folds"),
                          ("classes", "classes"), ("test_ids_hash", "test ids")):
            if m.manifest[key] != first.manifest[key]:
                raise BlendError(f"models '{first.name}' and '{m.name}' were trained on different {what} "
                                 f"({first.manifest[key]!s:.40} vs {m.manifest[key]!s:.40}); "
                                 f"retrain one of them on the other's or blend them apart")


def cross_val_proba(blender: Blender, P: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """The blender's OOF probabilities: fit on the other folds, predict each held-out fold."""
    if not blender.learns:
        return clone(blender).fit(P, y).predict_proba(P)
    out = np.zeros(P.shape[1:], dtype=float)
    for k in np.unique(fold):
        held = fold == k
        out[held] = clone(blender).fit(P[:, ~held], y[~held]).predict_proba(P[:, held])
    return out


def blend(store: Store, competition: str | None = None, models: list[str] | None = None, method: str = "soft",
          metric: str = "accuracy", out: Path | None = None, reporter: Reporter = SILENT) -> BlendResult:
    competition = store.pick_competition(competition)
    if metric not in METRICS:
        raise BlendError(f"--metric: '{metric}' is not one of {', '.join(METRICS)}")
    methods = list_blenders() if method == "all" else [m.strip() for m in method.split(",") if m.strip()]
    blenders = {name: create_blender(name) for name in methods}
    names = select_members(store, competition, models)
    members = [store.load_member(competition, name) for name in names]
    check_compatible(members)
    folds = store.folds(members[0].manifest)
    classes = members[0].classes
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for label in folds.labels])
    P_oof = np.stack([m.oof for m in members])
    P_test = np.stack([m.test for m in members])

    member_metrics = {m.name: classification_metrics(y, m.oof, classes) for m in members}
    blender_metrics, fit_seconds, fitted = {}, {}, {}
    reporter.start("blend", f"blending {len(members)} models", total=len(blenders))
    for name, blender in blenders.items():
        reporter.advance("blend", 0, description=f"blending {len(members)} models: {name}")
        started = time.perf_counter()
        oof = cross_val_proba(blender, P_oof, y, folds.fold)
        fitted[name] = clone(blender).fit(P_oof, y)
        fit_seconds[name] = time.perf_counter() - started
        blender_metrics[name] = classification_metrics(y, oof, classes)
        reporter.advance("blend")
    reporter.finish("blend")

    higher = METRICS[metric]
    best = sorted(blender_metrics, key=lambda n: (-blender_metrics[n][metric] if higher else blender_metrics[n][metric],
                                                  blender_metrics[n]["log_loss"]))[0]
    test_probs = fitted[best].predict_proba(P_test)
    fmt = submission_format(store.sample_submission(competition), classes)
    out = Path(out) if out else submissions_dir() / f"{competition}-{best}.csv"
    submission = write_submission(out, fmt, members[0].test_ids, test_probs, classes)
    result = BlendResult(competition=competition, method=best, members=names, member_metrics=member_metrics,
                         blender_metrics=blender_metrics, fit_seconds=fit_seconds, described=fitted[best].describe(),
                         submission=submission)
    report = {"competition": competition, "method": best, "metric": metric, "members": member_metrics,
              "blend": blender_metrics[best], "blenders": blender_metrics, "fit_seconds": fit_seconds,
              "fitted": result.described, "submission": str(submission)}
    result.report_files = write_report(report_dir(out), report)
    return result
