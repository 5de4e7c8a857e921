"""What a study leaves in store/<competition>/tune/<recipe>/ beside its journal: trials.csv and best.yaml after
every trial, and at the end of a run summary.md with the optimisation history and the fields' importances
as PNG plots (Optuna's matplotlib visualisations)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pandas as pd
import yaml

from .. import fileio
from ..metrics import HEADLINE
from ..progress import counted
from ..report import markdown_table
from ..store import BEST_RECIPE, HISTORY_PLOT, IMPORTANCE_PLOT, STUDY, TRIALS, TUNE_SUMMARY, Store
from .run import PRUNED, best_row, trials_table
from .space import Space


def write_progress(store: Store, competition: str, name: str, rows: list[dict], space: Space,
                   metric: str) -> list[Path]:
    """trials.csv, and best.yaml once a trial is complete: what a killed run still leaves behind."""
    folder = store.tune_dir(competition, name)
    table = pd.DataFrame([{"trial": r["number"], "model": r["model"], "state": r["state"], metric: r["value"],
                           "partial": r["partial"], "folds_done": r["folds_done"], "folds": r["folds"],
                           "seconds": r["seconds"],
                           **{p.path: r["params"].get(p.path) for p in space.params}, "reason": r["reason"],
                           "duplicate_of": r["duplicate_of"]}
                          for r in rows])
    fileio.write_csv(folder / TRIALS, table)
    files = [folder / TRIALS]
    best = best_row(rows, metric)
    if best is not None and best["recipe"]:
        text = (f"# The best trial of kit tune's study of {name}: trial {best['number']}, {metric} "
                f"{best['value']:.4f} (k-fold CV). Its folds are in the store as model {best['model']}:\n"
                f"# kit train on this file trains nothing more, kit train --full refits it; rename it to train a copy.\n"
                + yaml.safe_dump(best["recipe"], sort_keys=False))
        fileio.write_text(folder / BEST_RECIPE, text)
        files.append(folder / BEST_RECIPE)
    return files


def write_outputs(store: Store, competition: str, name: str, study, rows: list[dict], space: Space, metric: str,
                  recipe_path: Path) -> tuple[dict | None, dict[str, float], list[Path]]:
    """Everything: trials.csv, best.yaml, the plots and summary.md -> (the best row, the importances, the files)."""
    folder = store.tune_dir(competition, name)
    files = write_progress(store, competition, name, rows, space, metric)
    best = best_row(rows, metric)
    importances = param_importances(study)
    images = {}
    for title, file, plot in (("Optimisation history", HISTORY_PLOT, "history"),
                              ("Field importances", IMPORTANCE_PLOT, "importances")):
        if _plot(study, plot, metric, folder / file):
            images[title] = file
            files.append(folder / file)
    fileio.write_text(folder / TUNE_SUMMARY, summary_text(name, competition, rows, best, importances, images, space,
                                                          metric, recipe_path, store))
    files.append(folder / TUNE_SUMMARY)
    return best, importances, files


def param_importances(study) -> dict[str, float]:
    """Optuna's importance of each field for the complete trials' scores (its default evaluator); {} with too few
    complete trials, or fields that never varied."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:  # one score explains nothing
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
        return {}


def _plot(study, which: str, metric: str, path: Path) -> bool:
    """One of Optuna's matplotlib plots as PNG, written atomically; False when the study cannot be plotted yet."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete or (which == "importances" and len(complete) < 2):
        return False
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's matplotlib plots are marked experimental
            if which == "history":
                ax = plots.plot_optimization_history(study, target_name=f"{metric} (CV)")
            else:
                ax = plots.plot_param_importances(study, target_name=f"{metric} (CV)")
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
        return False
    figure = ax.figure
    try:
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(figure)
    fileio.write_bytes(path, buffer.getvalue())
    return True


def summary_text(name: str, competition: str, rows: list[dict], best: dict | None, importances: dict[str, float],
                 images: dict[str, str], space: Space, metric: str, recipe_path: Path, store: Store) -> str:
    folder = store.tune_dir(competition, name)
    higher = "higher" if HEADLINE[metric] else "lower"
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "failed", "running")}
    lines = [f"# kit tune: {name} on {competition}", "",
             f"Recipe `{recipe_path}`; study `{folder / STUDY}` (Optuna's journal storage; TPE sampler, "
             f"{space.options.pruner.name} pruner). Each trial is the recipe with the drawn values, trained k-fold on "
             f"the competition's stored folds as a model of the store (`{name}-t<n>`), scored by its CV {metric} "
             f"({higher} is better). A pruned trial stopped after the folds shown; its partial score is listed "
             f"apart and never ranked.", "",
             "Trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".", "",
             "## Search space", ""]
    lines += [f"- `{p.path}`: {p.describe()}" for p in space.params]
    lines += ["", "## Best trial", ""]
    if best is None:
        lines.append("No trial is complete yet.")
    else:
        cv = best["cv"] or {}
        scores = ", ".join(f"{k} {v:.4f}" for k, v in cv.items()) or f"{metric} {best['value']:.4f}"
        lines += [f"Trial {best['number']} (model `{best['model']}`): {scores}.", ""]
        lines += [f"- `{path}` = {value}" for path, value in best["params"].items()]
        lines += ["", f"Its recipe: `{folder / BEST_RECIPE}` (`kit train` on it trains nothing more: its folds are in "
                      f"the store; `kit train --full` refits it on every image)."]
    if importances:
        lines += ["", "## Field importances", "", "Optuna's importance evaluator over the complete trials (how much "
                                                  "of the score's variation each field explains).", "",
                  markdown_table(["field", "importance"], [[k, v] for k, v in importances.items()])]
    title, columns, table, highlight = trials_table(rows, space, metric, name, len(rows))
    lines += ["", "## Trials", "", markdown_table(columns, table, highlight)]
    pruned = [r for r in rows if r["state"] == PRUNED]
    if pruned:
        lines += ["", f"{counted(len(pruned), 'pruned trial')}: their models are left unfinished "
                      f"in the store, and kit blend leaves them out of a glob."]
    for title, file in images.items():
        lines += ["", f"## {title}", "", f"![{title}]({file})"]
    lines += ["", "## Next", "", "```bash",
              f"kit blend -m '{name}-t*' --method caruana     # the trials as members (pruned ones are left out)",
              f"kit train {folder / BEST_RECIPE} --full   # the best trial refit on every training image",
              "```"]
    return "\n".join(lines) + "\n"
