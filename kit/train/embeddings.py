"""Training a head on cached features: the embeddings mode, and a linear probe without augmentation.

The backbone runs once over every image (kit/features.py); each (seed, fold) then trains only its
head on rows of the cached N x V x D features, V the recipe's TTA views. Every view of a training
image is a training row (a mirrored image is as much a sample as the image), and a held-out or
test image's prediction is the mean of its views' probabilities, as TTA averages them on images.

A torch head (linear, mlp, or the timm model's own classifier in a linear probe) trains in the one
loop, kit/train/loop.py's fit, with the recipe's optimiser, schedule and early stopping; an
estimator head (logreg, lightgbm) is fitted once. Both write the same fold files as any member.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import time

import numpy as np
import torch
from torch import nn

from ..features import CachedFeatures
from ..metrics import log_loss
from ..models.heads import ESTIMATOR_HEADS, build_head
from ..progress import SILENT, Reporter
from .device import DeviceSettings
from .loop import fit, predict_proba


ESTIMATOR_KEY = "estimator_pickle"


class FeatureBatches:
    """(features, labels) batches over `indices` of a resident float tensor, in ArrayBatches' contract
    (len, labels[indices], a resumable shuffle), so that fit() trains on it as on images."""

    def __init__(self, features: torch.Tensor, labels: np.ndarray | None, batch_size: int, shuffle: bool = False,
                 seed: int = 0, drop_last: bool = False):
        self.features, self.labels = features, labels
        self.indices = np.arange(len(features))
        self.label_data = None if labels is None else torch.from_numpy(labels)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.drop_last = drop_last and len(self.indices) > batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(self.indices) if self.shuffle else self.indices
        for b in range(len(self)):
            rows = order[b * self.batch_size:(b + 1) * self.batch_size]
            take = torch.from_numpy(rows) if self.shuffle else slice(rows[0], rows[-1] + 1)
            yield self.features[take], None if self.label_data is None else self.label_data[take]

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


class ViewMean(nn.Module):
    """A head that takes one view per row (B, D) while training, and every view of a row (B, V, D) when
    predicting: then it returns the log of the views' mean probability, so that softmax gives that mean."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return self.head(x)
        b, v, d = x.shape
        probs = torch.softmax(self.head(x.reshape(b * v, d)).float(), dim=1).view(b, v, -1).mean(1)
        return probs.clamp_min(1e-12).log()


def training_rows(features: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every view of each of `rows` as a row of its own: (len(rows) * V, D) features and their labels."""
    x = np.asarray(features[np.sort(rows)])  # a memory map reads fastest front to back
    y = labels[np.sort(rows)]
    return x.reshape(-1, x.shape[-1]), np.repeat(y, x.shape[1])


def train_head(recipe, features: CachedFeatures, labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
               num_classes: int, run_seed: int, settings: DeviceSettings, reporter: Reporter = SILENT,
               checkpoint=None, classifier: nn.Linear | None = None, log=None) -> dict:
    """One (seed, fold)'s head: -> {'oof', 'test', 'history', 'best_epoch', 'stopped_early', 'weights'}.

    `classifier`: the timm model's own (new) classifier, which a linear probe trains; else the recipe's head.
    `log`: fit's epoch logger (train.log), for a torch head; an estimator, fitted at once, logs nothing.
    An empty `val_idx` is a refit on every row (kit train --full): nothing is validated, 'oof' is None."""
    cfg = recipe.train
    head_cfg = cfg.finetune.head
    x_train, y_train = training_rows(features.train, labels, train_idx)
    x_val, y_val = features.train[val_idx], labels[val_idx]  # in the order of the fold's ids
    x_test = np.array(features.test)  # a writable copy: torch refuses to wrap a read-only memory map
    if classifier is None and head_cfg.name in ESTIMATOR_HEADS:
        return _fit_estimator(head_cfg, x_train, y_train, x_val, y_val, x_test, num_classes, run_seed)
    torch.manual_seed(run_seed)
    head = classifier if classifier is not None else build_head(head_cfg.name, features.dim, num_classes, run_seed,
                                                               head_cfg.params)
    model = ViewMean(head)
    with _threads_for(head, cfg.batch_size, settings):
        return _fit_torch_head(recipe, model, head, x_train, y_train, x_val, y_val, x_test, run_seed, settings, reporter,
                               checkpoint, log=log)


# below this many multiply-adds per training step (parameters x batch), a CPU step is too small to share:
# OpenMP's synchronisation costs more than a second thread gains (a linear head on 1,280 features trained
# 4x faster on one thread than on two, on a busy 2-core machine)
SMALL_STEP = 50_000_000


@contextlib.contextmanager
def _threads_for(head: nn.Module, batch_size: int, settings: DeviceSettings):
    small = sum(p.numel() for p in head.parameters()) * batch_size < SMALL_STEP
    if settings.device.type != "cpu" or not small:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_torch_head(recipe, model, head, x_train, y_train, x_val, y_val, x_test, run_seed, settings, reporter,
                    checkpoint, log=None) -> dict:
    cfg, to = recipe.train, settings.device
    train_batches = FeatureBatches(torch.from_numpy(x_train).to(to), y_train, cfg.batch_size, shuffle=True,
                                   seed=run_seed, drop_last=True)
    val_batches = (FeatureBatches(torch.from_numpy(x_val).to(to), y_val, recipe.predict.batch_size)
                   if len(x_val) else None)
    test_batches = FeatureBatches(torch.from_numpy(x_test).to(to), None, recipe.predict.batch_size)
    plain = settings.__class__(settings.device, settings.amp_dtype, channels_last=False)  # rows, not images
    result = fit(model, train_batches, val_batches, cfg, plain, reporter, progress_key="train", checkpoint=checkpoint,
                 log=log)
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in head.state_dict().items()}, buffer)
    return {"oof": None if val_batches is None else predict_proba(model, val_batches, plain),
            "test": predict_proba(model, test_batches, plain),
            "history": result.history, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
            "weights": buffer.getvalue()}


def _fit_estimator(head_cfg, x_train, y_train, x_val, y_val, x_test, num_classes: int, seed: int) -> dict:
    """An estimator head, fitted once: its history is one row, as one epoch's."""
    started = time.perf_counter()
    estimator = build_head(head_cfg.name, x_train.shape[-1], num_classes, seed, head_cfg.params)
    estimator.fit(x_train, y_train)

    def proba(x: np.ndarray) -> np.ndarray:  # (N, V, D) -> the views' mean probability, every class a column
        n, v, d = x.shape
        p = estimator.predict_proba(x.reshape(n * v, d)).reshape(n, v, -1).mean(1)
        out = np.zeros((n, num_classes), np.float32)
        out[:, estimator.classes_] = p  # a class absent from a fold's training rows gets probability 0
        return out

    train_probs = proba(x_train[:, None, :])
    oof, test = (proba(x_val) if len(x_val) else None), proba(x_test)  # no rows held out: a refit on all of them
    history = [{"epoch": 1, "train_loss": log_loss(y_train, train_probs),
                "train_acc": float((train_probs.argmax(1) == y_train).mean()),
                "val_loss": None if oof is None else log_loss(y_val, oof),
                "val_acc": None if oof is None else float((oof.argmax(1) == y_val).mean()), "lr": 0.0,
                "seconds": time.perf_counter() - started}]
    # stored as a weights file like every member's (a torch zip the store checks): the pickled estimator's
    # bytes as one uint8 tensor, which torch.load(weights_only=True) reads without unpickling anything
    buffer = io.BytesIO()
    torch.save({ESTIMATOR_KEY: torch.frombuffer(bytearray(pickle.dumps(estimator)), dtype=torch.uint8)}, buffer)
    return {"oof": oof, "test": test, "history": history, "best_epoch": 0, "stopped_early": False,
            "weights": buffer.getvalue()}
