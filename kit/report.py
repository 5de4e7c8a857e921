"""Metrics on out-of-fold predictions (accuracy, log loss, per-class precision/recall/F1), and the
report written beside a submission: report.json, per_class.csv, confusion.png, correlation.png and
summary.md, which shows them together."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from . import fileio
from .metrics import log_loss
from .progress import fmt


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
    """`report` = {"blend": {...metrics}, "members": {name: metrics}, ...} as kit.blend.run builds it;
    writes report.json, per_class.csv, the plots and summary.md."""
    json_path, csv_path = folder / "report.json", folder / "per_class.csv"
    fileio.write_json(json_path, report)
    frames = [per_class_frame(f"blend:{report['method']}", report["blend"])]
    frames += [per_class_frame(name, m) for name, m in report["members"].items()]
    fileio.write_csv(csv_path, pd.concat(frames, ignore_index=True).round(6))
    counts = np.array(report["confusion"], dtype=float)
    recall = counts / np.clip(counts.sum(1, keepdims=True), 1, None)  # colour: share of each true class
    classes = [c["class"] for c in report["blend"]["per_class"]]
    confusion_png = plot_matrix(folder / "confusion.png", report["confusion"], classes,
                                f"blend:{report['method']}, out of fold (colour: share of the true class)",
                                "predicted", "true", colour=recall, vmin=0, vmax=1, fmt="{:.0f}")
    corr = report["correlation"]
    correlation_png = plot_matrix(folder / "correlation.png", corr["matrix"], corr["members"],
                                  "members' OOF probabilities: Pearson correlation", "", "", fmt="{:.3f}")
    images = {"Confusion matrix of the blend": "confusion.png", "Correlation of the members": "correlation.png"}
    summary = write_summary(folder / "summary.md", report, images)
    return [json_path, csv_path, confusion_png, correlation_png, summary]


# ---- the blend's report: tables shared by the terminal and summary.md, plots, files

def confusion_matrix(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> list[list[int]]:
    """Counts: rows are the true classes, columns the predicted ones."""
    from sklearn.metrics import confusion_matrix as counts

    return counts(y_true, probs.argmax(1), labels=np.arange(len(classes))).tolist()


def confident_errors(ids: np.ndarray, y_true: np.ndarray, probs: np.ndarray, fold: np.ndarray,
                     classes: list[str], limit: int = 48) -> dict:
    """The held-out rows the blend gets wrong, most confident first (its probability of the class it
    picked): what a competitor looks at next (a mislabelled image, two classes the models confuse).
    -> {"wrong": how many rows are wrong, "of": rows, "rows": [{id, fold, true, predicted, confidence,
    p_true}] for at most `limit` of them}."""
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = probs[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence, kind="stable")][:limit]
    rows = [{"id": str(ids[i]), "fold": int(fold[i]), "true": classes[y_true[i]], "predicted": classes[predicted[i]],
             "confidence": round(float(probs[i, predicted[i]]), 6), "p_true": round(float(probs[i, y_true[i]]), 6)}
            for i in order]
    return {"wrong": int(len(wrong)), "of": int(len(y_true)), "rows": rows}


def member_correlation(names: list[str], P: np.ndarray) -> dict:
    """Pearson correlation of the members' OOF probabilities (every row and class, flattened): members
    that agree everywhere (near 1) add little to a blend."""
    flat = P.reshape(len(P), -1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.atleast_2d(np.corrcoef(flat))
    rows = [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in matrix]
    return {"members": list(names), "matrix": rows}


def score_table(report: dict) -> tuple[list[str], list[list], int]:
    """Every member's and blender's OOF scores; the index of the row that was written."""
    columns = ["model", "kind", "accuracy", "log_loss", "macro_f1", "fit s", "cv s"]
    rows = [[name, "member", m["accuracy"], m["log_loss"], m["macro_f1"], "", ""] for name, m in report["members"].items()]
    # with outside submissions a blend's score is its kit members' part alone (outside_note says so)
    blend_kind = "not CV" if report.get("outside") else "blend"
    rows += [[f"blend:{name}", "nested CV" if report["nested_cv"][name] else blend_kind, m["accuracy"],
              m["log_loss"], m["macro_f1"], report["fit_seconds"][name], report["cv_seconds"][name]]
             for name, m in report["blenders"].items()]
    return columns, rows, len(report["members"]) + list(report["blenders"]).index(report["method"])


def outside_note(report: dict) -> str | None:
    """The warning a blend with outside submissions carries: its score is not cross-validated."""
    outside = report.get("outside") or {}
    if not outside:
        return None
    files = ", ".join(f"{v['file']} ({v['kind']})" for v in outside.values())
    return (f"blend scores are not cross-validated: the submission also blends outside submissions {files}, "
            f"which have no out-of-fold predictions, so the scores are those of the kit members' part alone")


def per_class_table(report: dict) -> tuple[list[str], list[list]]:
    """The written blend's precision/recall/F1 per class, then each member's F1."""
    blend, members = report["blend"], report["members"]
    columns = ["class", "precision", "recall", "f1", "support"] + list(members)
    rows = [[c["class"], c["precision"], c["recall"], c["f1"], c["support"]]
            + [members[n]["per_class"][i]["f1"] for n in members] for i, c in enumerate(blend["per_class"])]
    rows += [[f"{avg} avg", v["precision"], v["recall"], v["f1"], v["support"]]
             + [members[n]["averages"][avg]["f1"] for n in members] for avg, v in blend["averages"].items()]
    return columns, rows


def fitted_table(report: dict) -> tuple[list[str], list[list], dict]:
    """What the written blender fitted: per-member values (weights, times selected) as a table, and
    the rest (convergence, best score...) as a dict."""
    fitted = report["fitted"]
    names = list(report["members"]) + list(report.get("outside") or {})  # kit members, then outside submissions
    per_member = {k: v for k, v in fitted.items() if isinstance(v, dict) and set(v) == set(names)}
    rows = [[name] + [per_member[k][name] for k in per_member] for name in names] if per_member else []
    return ["member"] + list(per_member), rows, {k: v for k, v in fitted.items() if k not in per_member}


def markdown_table(columns: list[str], rows: list[list], highlight: int | None = None) -> str:
    def line(cells):
        return "| " + " | ".join(cells) + " |"

    out = [line(columns), line(["---"] * len(columns))]
    for i, row in enumerate(rows):
        cells = [fmt(v, c) for v, c in zip(row, columns)]
        out.append(line([f"**{c}**" if i == highlight and c else c for c in cells]))
    return "\n".join(out)


def plot_matrix(path: Path, matrix, labels: list[str], title: str, xlabel: str, ylabel: str,
                colour: np.ndarray | None = None, vmin: float | None = None, vmax: float | None = None,
                fmt: str = "{:g}") -> Path:
    """A labelled heat map as PNG (matrix_png), written atomically."""
    fileio.write_bytes(path, matrix_png(matrix, labels, title, xlabel, ylabel, colour, vmin, vmax, fmt))
    return path


def matrix_png(matrix, labels: list[str], title: str, xlabel: str, ylabel: str,
               colour: np.ndarray | None = None, vmin: float | None = None, vmax: float | None = None,
               fmt: str = "{:g}") -> bytes:
    """A labelled heat map as PNG bytes. Uses matplotlib's Figure directly (no pyplot), so no GUI
    backend is needed and a notebook's backend is left alone."""
    from matplotlib.figure import Figure

    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    n = len(labels)
    # a few inches for the axes' labels, then ~1/3 inch a cell: a 2 x 2 stays small, 30 x 30 fits a page's width
    # (the HTML pages draw it at its own size, so its labels stay as large as the page's text)
    side = min(3.8 + 0.32 * n, 12.5)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot()
    image = ax.imshow(values if colour is None else colour, cmap="viridis", vmin=vmin, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xlabel=xlabel, ylabel=ylabel, xticks=range(n), yticks=range(n))
    ax.set_title(title, fontsize=10, wrap=True)  # a long title over a small matrix wraps instead of being cut
    ax.set_xticklabels(labels, rotation=90 if max(map(len, labels)) > 3 else 0)
    ax.set_yticklabels(labels)
    if n <= 25:  # beyond that the numbers no longer fit in their cells
        text_colours = cell_text_colours(image.cmap(image.norm(values if colour is None else colour)))
        for i in range(n):
            for j in range(n):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=9 if n <= 12 else 7,
                            color=text_colours[i, j])
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def cell_text_colours(rgba: np.ndarray) -> np.ndarray:
    """Black or white for the number in each cell, from the cell's colour as drawn (its luminance), not
    from where its value sits among the others: a confusion matrix's big diagonal leaves its off-diagonal
    cells dark even where their counts are above the mean."""
    luminance = rgba[..., :3] @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(luminance > 0.45, "black", "white")


def write_summary(path: Path, report: dict, images: dict[str, str]) -> Path:
    """summary.md: the scores, what was fitted, the per-class table and the plots, in one page."""
    chosen = "picked with --pick" if report["picked"] else f"the best by {report['metric']}"
    lines = [f"# Blend report: {report['competition']}, blend:{report['method']}", "",
             f"Submission: `{report['submission']}` from blend:{report['method']} ({chosen}). "
             "Scores are on the out-of-fold rows; blenders that learn are scored by nested cross-validation "
             "over the members' folds, so no row is scored by a blender fitted on it.", "",
             f"Members ({len(report['members'])}): {', '.join(report['members'])}"]
    lines += [f"- dropped {name}: {why}" for name, why in report["dropped"].items()]
    if report.get("outside"):
        lines += [f"- outside submission {name}: {v['file']} ({v['kind']}; no out-of-fold predictions)"
                  for name, v in report["outside"].items()]
        lines += ["", f"**Not cross-validated:** {outside_note(report)}."]
    lines += [f"- **warning:** {text}" for text in report["warnings"]]
    refits = {name: how for name, how in report.get("test_predictions", {}).items() if how.startswith("full")}
    if refits:  # kit blend --full: the submission is not the folds' average, the score still is the folds'
        lines += ["", "Test predictions: " + "; ".join(f"{name} from its {how}" for name, how in refits.items())
                  + "; the others' from the average of their fold models. The scores above are the folds' "
                  "out-of-fold ones: a refit on every image holds no row out, so it has no score of its own."]
    columns, rows, highlight = score_table(report)
    lines += ["", "## Out-of-fold scores", "", markdown_table(columns, rows, highlight)]
    columns, rows, other = fitted_table(report)
    lines += ["", f"## Fitted: blend:{report['method']}", ""]
    if rows:
        lines += [markdown_table(columns, rows), ""]
    lines += [f"- {k}: {v}" for k, v in other.items()] or ([] if rows else ["nothing fitted (no parameters learnt)"])
    columns, rows = per_class_table(report)
    lines += ["", "## Per class (the blend, then each member's F1)", "", markdown_table(columns, rows)]
    for title, file in images.items():
        lines += ["", f"## {title}", "", f"![{title}]({file})"]
    fileio.write_text(path, "\n".join(lines) + "\n")
    return path
