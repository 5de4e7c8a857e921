"""The report's plots as PNG bytes: learning curves and per-class bars (the heat maps are kit.report's).

matplotlib's Figure is used directly (no pyplot), so no GUI backend is needed and a notebook's
backend is left alone; each plot is drawn at a fixed, modest size so that a page of thirty models
stays a few megabytes.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

#: epochs drawn per run at most: a longer history is thinned evenly (its first, best and last epochs kept)
CURVE_POINTS = 200
DPI = 80


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def thin(history: pd.DataFrame, keep: list[int] = (), points: int = CURVE_POINTS) -> pd.DataFrame:
    """At most `points` rows of a history, evenly spaced, always with its first and last rows and `keep`."""
    if len(history) <= points:
        return history
    rows = set(np.linspace(0, len(history) - 1, points).round().astype(int)) | {i for i in keep if 0 <= i < len(history)}
    return history.iloc[sorted(rows)]


def learning_curves_png(runs: list[tuple[str, pd.DataFrame, int | None]], title: str) -> bytes:
    """Loss and accuracy per epoch, training (dashed) and validation (solid), one colour per run.

    runs: (label, history, best epoch 1-based or None). Every fold of a model in one plot: folds that
    disagree (one diverging, one stopping early) show at a glance; the best epoch is a dot."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 3.4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for (label, history, best), colour in zip(runs, colours):
        epochs = pd.to_numeric(history.get("epoch"), errors="coerce")
        best_row = [int(np.flatnonzero(epochs.to_numpy() == best)[0])] if best in set(epochs) else []
        h = thin(history, best_row)
        x = h["epoch"]
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
            for split, style in (("train", "--"), ("val", "-")):
                column = f"{split}_{metric}"
                if column in h and pd.to_numeric(h[column], errors="coerce").notna().any():
                    ax.plot(x, pd.to_numeric(h[column], errors="coerce"), style, color=colour, linewidth=1.2,
                            marker="." if len(h) <= 3 else None,
                            label=label if (ax is loss_ax and split == "val") else None)
            if best_row and f"val_{metric}" in history:
                ax.plot([best], [history[f"val_{metric}"].iloc[best_row[0]]], "o", color=colour, markersize=5)
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.set(title="accuracy", xlabel="epoch")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    handles, labels = loss_ax.get_legend_handles_labels()
    styles = [Line2D([], [], color="grey", linestyle="-", label="validation"),
              Line2D([], [], color="grey", linestyle="--", label="training"),
              Line2D([], [], color="grey", marker="o", linestyle="", label="best epoch")]
    shown = handles if len(handles) <= 10 else []  # beyond ten runs the colours repeat: no per-run legend
    acc_ax.legend(handles=shown + styles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.suptitle(title, fontsize=10)
    # fixed margins (room for the legend on the right): tight_layout measured every tick label, a third of the time
    fig.subplots_adjust(left=0.055, right=0.865, bottom=0.14, top=0.84, wspace=0.18)
    return png(fig)


def per_class_png(scores: dict[str, list[dict]], classes: list[str]) -> bytes:
    """Precision, recall and F1 per class, one bar per model in each class's group (the blend first).

    scores: {model: [{"precision", "recall", "f1"} per class, in `classes` order]}."""
    from matplotlib.figure import Figure

    names = list(scores)
    n, m = len(classes), len(names)
    fig = Figure(figsize=(min(max(9.0, 1.5 + 0.22 * n * (m + 1)), 16), 7.5))
    axes = fig.subplots(3, 1, sharex=True)
    width = 0.8 / max(m, 1)
    x = np.arange(n)
    for ax, metric in zip(axes, ("precision", "recall", "f1")):
        for j, name in enumerate(names):
            values = [row[metric] for row in scores[name]]
            ax.bar(x + (j - (m - 1) / 2) * width, values, width, label=name, color=f"C{j % 10}",
                   edgecolor="black" if j == 0 else None, linewidth=0.6)
        low = min(min(row[metric] for row in rows) for rows in scores.values())
        ax.set_ylim(max(0.0, low - 0.05) if low > 0.5 else 0.0, 1.0)
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(classes, rotation=90 if max(map(len, classes)) > 3 else 0, fontsize=8)
    axes[0].legend(fontsize=8, ncol=min(m, 6), loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False)
    fig.tight_layout()
    return png(fig)
