"""`train.log: tensorboard`: each run's epochs as TensorBoard event files, written while it trains.

    store/<competition>/tensorboard/<model>/seed<s>/fold<k>/   (seed<s>/full/ for kit train --full)

so that `tensorboard --logdir store/<competition>/tensorboard` shows every model and fold side by
side, live. The one training loop (kit/train/loop.py's fit) hands each epoch's history row to the
logger; nothing else changes: the option is left out of the recipe's hash (a model trained with it
is the same model), and history.csv is written as always. The `tensorboard` package is an optional
extra (pip install 'kit[tensorboard]'); a recipe that asks for it without it fails before training.
"""

from __future__ import annotations

import importlib.util

from ..errors import RecipeError
from ..recipe import Recipe, TrainConfig
from ..store import Store, fold_subdir, full_subdir

INSTALL = "pip install 'kit[tensorboard]' (or pip install tensorboard)"
#: history column -> TensorBoard tag: each metric's own chart, training and validation beside each other
TAGS = {"train_loss": "loss/train", "val_loss": "loss/validation", "train_acc": "accuracy/train",
        "val_acc": "accuracy/validation", "lr": "lr", "seconds": "seconds per epoch"}


def check_log(cfg: TrainConfig) -> None:
    """RecipeError, in one line with the fix, when the recipe logs to TensorBoard and it is not installed."""
    if cfg.log == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise RecipeError(f"train.log: tensorboard needs the tensorboard package, which is not installed; {INSTALL}")


class TensorBoardLog:
    """Writes one run's epochs (fit's history rows) as scalars, step = the epoch, flushed after each."""

    def __init__(self, folder):
        self.folder = folder
        self.writer = None

    def epoch(self, row: dict) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: events a killed run (or an earlier training of this fold, before --force) wrote
            # from this epoch on are hidden, so a resumed or retrained fold draws one line, not two
            self.writer = SummaryWriter(str(self.folder), purge_step=int(row["epoch"]))
        for column, tag in TAGS.items():
            if row.get(column) is not None:
                self.writer.add_scalar(tag, float(row[column]), int(row["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def epoch_log(recipe: Recipe, store: Store, competition: str, seed: int, fold: int | None) -> TensorBoardLog | None:
    """The logger for one (seed, fold) run (fold None: the refit on every image), or None when the recipe
    logs nothing."""
    if recipe.train.log != "tensorboard":
        return None
    run = full_subdir(seed) if fold is None else fold_subdir(seed, fold)
    return TensorBoardLog(store.tensorboard_dir(competition, recipe.name, run))
