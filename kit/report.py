"""Metrics on out-of-fold predictions: accuracy, log loss, per-class precision/recall/F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import fileio


def log_loss(y_true: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Multi-class log loss, rows renormalised and clipped as Kaggle's metric does."""
    p = np.clip(probs, eps, 1.0)
    p = p / p.sum(1, keepdims=True)
    return float(-np.log(p[np.arange(len(y_true)), y_true]).mean())


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, log loss, and precision/recall/F1 per class with macro and weighted averages."""
    from sklearn.metrics import precision_recall_fscore_support

    y_pred = probs.argmax(1)
    labels = np.arange(len(classes))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = [{"class": c, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, c in enumerate(classes)]
    averages = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        averages[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af), "support": int(len(y_true))}
    return {
        "accuracy": float((y_pred == y_true).mean()),
        "log_loss": log_loss(y_true, probs),
        "macro_f1": averages["macro"]["f1"],
        "per_class": per_class,
        "averages": averages,
    }


def per_class_frame(name: str, metrics: dict) -> pd.DataFrame:
    rows = [dict(model=name, **row) for row in metrics["per_class"]]
    rows += [dict(model=name, **{"class": f"{avg} avg"}, **vals) for avg, vals in metrics["averages"].items()]
    return pd.DataFrame(rows, columns=["model", "class", "precision", "recall", "f1", "support"])


def report_dir(submission: Path) -> Path:
    """Where a submission's report goes: submissions/x.csv -> submissions/x.report/"""
    return submission.with_name(submission.stem + ".report")


def write_report(folder: Path, report: dict) -> list[Path]:
    """`report` = {"blend": {...metrics}, "members": {name: metrics}, ...}; writes report.json and per_class.csv."""
    json_path, csv_path = folder / "report.json", folder / "per_class.csv"
    fileio.write_json(json_path, report)
    frames = [per_class_frame(f"blend:{report['method']}", report["blend"])]
    frames += [per_class_frame(name, m) for name, m in report["members"].items()]
    fileio.write_csv(csv_path, pd.concat(frames, ignore_index=True).round(6))
    return [json_path, csv_path]
