"""The training loop for one fold: train, validate each epoch, keep the best epoch's weights.

Loss and accuracy are summed on the device and read back once per epoch, so the step never
waits on the host (what a hand-written loop does, and what keeps GPU pipelines full).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RecipeError
from ..metrics import log_loss
from ..progress import SILENT, Reporter
from ..recipe import TrainConfig
from ..tta import NO_TTA, TTA
from .batches import ArrayBatches
from .checkpoint import EpochCheckpoint, rng_state, set_rng_state
from .device import DeviceSettings
from .ema import WeightEMA
from .finetune import Finetune
from .lookahead import Lookahead
from .mixing import BatchMixer
from .optim import LRSchedule, build_optimizer, optimizer_groups
from .targets import TeacherLoss, packed_labels


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # one row per epoch
    best_epoch: int = -1  # 0-based
    stopped_early: bool = False

    @property
    def best(self) -> dict:
        return self.history[self.best_epoch]


def fit(model: nn.Module, train_batches: ArrayBatches, val_batches: ArrayBatches | None, cfg: TrainConfig,
        settings: DeviceSettings, reporter: Reporter = SILENT, progress_key: str = "epochs",
        checkpoint: EpochCheckpoint | None = None, mixer: BatchMixer | None = None,
        teacher_loss: TeacherLoss | None = None, log=None) -> FitResult:
    """Train `model` in place for cfg.epochs; on return it holds the weights of its best epoch (lowest val loss),
    or of its last with cfg.keep 'last'.

    Without `val_batches` (a refit on every training image: nothing is held out) no epoch is
    validated, so none is chosen: the model keeps its last epoch's weights (the EMA's, with one),
    and the history's val_loss and val_acc are None.

    With cfg.ema_decay those are the averaged weights of that epoch; with cfg.early_stopping the
    fold stops once the validation loss has not improved for that many epochs. With a
    `checkpoint`, the whole state is saved after every epoch, and a saved state is resumed from.
    With a `mixer`, training batches are mixed (mixup / CutMix) and trained on soft targets.
    With cfg.lookahead the weights are averaged into themselves on its schedule (kit/train/lookahead.py).
    With a `teacher_loss`, the training batches' labels are packed per-row targets (pseudo-labels, a
    teacher's probabilities, loss weights: kit/train/targets.py), and it is their loss.
    With a `log` (kit/train/tensorboard.py), each epoch's history row goes to log.epoch as the epoch ends.

    Layers may take part through two hooks: `init_from_data(images)` is called once before the first
    step with cfg.init_images normalised training images (airbench's whitening stem computes its
    filters), and `epoch_start(epoch)` before every epoch (its bias stops training after a few).
    """
    model.to(settings.device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    finetune = Finetune(model, cfg.finetune)  # may freeze batch norm; decides which stages train when
    groups = optimizer_groups(model, finetune.param_groups(cfg.optimizer.lr), cfg.optimizer, cfg.batch_size)
    optimizer = build_optimizer(groups, cfg.optimizer)
    schedule = LRSchedule(optimizer, cfg.scheduler, cfg.epochs, len(train_batches))
    scaler = torch.amp.GradScaler(settings.device.type, enabled=settings.uses_grad_scaler)
    ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay else None
    lookahead = Lookahead(cfg.lookahead, cfg.epochs * len(train_batches)) if cfg.lookahead else None
    step_model = compiled(model, cfg, settings)
    evaluated = ema.module if ema else model
    result, best_state, best_loss = FitResult(), None, math.inf
    parts = {"model": model, "optimizer": optimizer, "schedule": schedule, "scaler": scaler, "batches": train_batches}
    if ema is not None:
        parts["ema"] = ema
    if mixer is not None:
        parts["mixer"] = mixer
    if lookahead is not None:
        parts["lookahead"] = lookahead
    saved = checkpoint.load() if checkpoint else None
    if saved:
        for name, part in parts.items():
            part.load_state_dict(saved[name])
        set_rng_state(saved["rng"])
        result.history, result.best_epoch = saved["history"], saved["best_epoch"]
        best_state, best_loss = saved["best_state"], saved["best_loss"]
        reporter.message(f"resuming from the checkpoint after epoch {len(result.history)}")
        reporter.advance(progress_key, len(result.history))
    elif cfg.init_images:  # a resumed model has its data-made weights in the checkpoint already
        init_from_data(model, train_batches, cfg)
    for epoch in range(len(result.history), cfg.epochs):
        started = time.perf_counter()
        lr = schedule.lr
        finetune.start_epoch(model, epoch)
        for module in model.modules():
            if hasattr(module, "epoch_start"):
                module.epoch_start(epoch)
        train_loss, train_acc = _train_epoch(step_model, train_batches, optimizer, schedule, scaler, ema, mixer, cfg,
                                             settings, lambda: reporter.advance(progress_key, 1 / len(train_batches)),
                                             lookahead, epoch, teacher_loss)
        check_finite(np.array([train_loss]), f"epoch {epoch + 1}: the training loss is", cfg)
        val_loss = val_acc = None
        if val_batches is not None:
            val_probs = predict_proba(evaluated, val_batches, settings)
            val_labels = val_batches.labels[val_batches.indices]
            # a diverged epoch stops the fold before its NaN reaches a checkpoint, the history or the store
            check_finite(val_probs, f"epoch {epoch + 1}: the held-out predictions are", cfg)
            val_loss = log_loss(val_labels, val_probs)
            val_acc = float((val_probs.argmax(1) == val_labels).mean())
        schedule.epoch_end(val_loss)
        result.history.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                               "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
                               "seconds": time.perf_counter() - started})
        if log is not None:
            log.epoch(result.history[-1])
        if val_loss is None or cfg.keep == "last":  # unvalidated, or the recipe keeps its last epoch
            result.best_epoch = epoch
        elif val_loss < best_loss:
            best_loss, result.best_epoch = val_loss, epoch
            best_state = copy.deepcopy({k: v.detach().to("cpu", copy=True) for k, v in evaluated.state_dict().items()})
        if checkpoint:
            checkpoint.save({**{name: part.state_dict() for name, part in parts.items()}, "rng": rng_state(),
                             "history": result.history, "best_epoch": result.best_epoch,
                             "best_state": best_state, "best_loss": best_loss})
        shown = f"train_loss {train_loss:.4f}" if val_loss is None else f"val_loss {val_loss:.4f} acc {val_acc:.4f}"
        reporter.advance(progress_key, 0, description=f"epoch {epoch + 1}/{cfg.epochs} {shown}")
        if (cfg.early_stopping and val_batches is not None and epoch - result.best_epoch >= cfg.early_stopping
                and epoch + 1 < cfg.epochs):
            result.stopped_early = True
            reporter.advance(progress_key, cfg.epochs - epoch - 1)  # the epochs skipped, so the bar stays true
            break
    if log is not None:
        log.close()
    if best_state is None and ema is not None:  # the last epoch kept: its averaged weights
        model.load_state_dict(ema.module.state_dict())
    elif best_state is not None:
        model.load_state_dict(best_state)
    return result


class NotFinite(RecipeError):
    """Training diverged: a loss or a prediction is NaN or infinite (most often a learning rate too high)."""


def check_finite(values, what: str, cfg: TrainConfig) -> None:
    """NotFinite when `values` (a loss, probabilities) hold a NaN or an infinity; `what` ends in its verb
    ('the training loss is')."""
    if not np.isfinite(values).all():
        raise NotFinite(f"{what} not finite (NaN or inf): the training diverged; "
                        f"lower train.optimizer.lr (now {cfg.optimizer.lr:g})")


def check_data_init(model: nn.Module, cfg: TrainConfig) -> list[nn.Module]:
    """The layers that take cfg.init_images (those with an `init_from_data`); RecipeError when there are none."""
    layers = [m for m in model.modules() if hasattr(m, "init_from_data")]
    if cfg.init_images and not layers:
        raise RecipeError(f"train.init_images: no layer of {type(model).__name__} initialises from data "
                          f"(airbench's whitening stem does); remove the field")
    return layers


def init_from_data(model: nn.Module, batches: ArrayBatches, cfg: TrainConfig) -> None:
    """Hand the first cfg.init_images training rows (normalised, unaugmented) to every layer that asks for data."""
    images = batches.first_images(cfg.init_images)
    for layer in check_data_init(model, cfg):
        layer.init_from_data(images)


def compiled(model: nn.Module, cfg: TrainConfig, settings: DeviceSettings) -> nn.Module:
    """The module the training steps call: torch.compile'd when the recipe asks and CUDA runs it.

    The compiled wrapper shares the model's parameters, so the optimizer, EMA, checkpoints and the
    eager validation pass all keep working on `model` itself."""
    if cfg.compile and settings.device.type == "cuda":
        return torch.compile(model)
    return model


def _train_epoch(model, batches, optimizer, schedule, scaler, ema, mixer, cfg, settings,
                 on_step, lookahead=None, epoch=0, teacher_loss=None) -> tuple[float, float]:
    """One pass over `batches`; the caller has put the model in training mode (finetune.start_epoch).

    Training accuracy counts a mixed image as its own (first) label, and a pseudo-labelled one as its
    target's top class."""
    module = getattr(model, "_orig_mod", model)  # under torch.compile: the model itself, for clipping and EMA
    loss_sum = torch.zeros((), device=settings.device)
    correct = torch.zeros((), device=settings.device, dtype=torch.long)
    seen = 0
    for x, y in batches:
        x, y = settings.to_device(x), y.to(settings.device, non_blocking=True)
        x, target = mixer(x, y) if mixer is not None else (x, y)
        with settings.autocast():
            logits = model(x)
            if teacher_loss is not None:  # packed per-row targets (kit/train/targets.py), in fp32
                loss = teacher_loss(logits, target)
            else:  # soft targets (a mixed batch): the loss in fp32, as log_softmax is under autocast
                loss = F.cross_entropy(logits if target is y else logits.float(), target,
                                       label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip:
            scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
            nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        if ema is not None:
            ema.update(module)
        if lookahead is not None:
            lookahead.update(module, epoch)
        loss_sum += loss.detach() * len(y)
        labels = y if teacher_loss is None else packed_labels(y, teacher_loss.num_classes)
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(y)
        on_step()
    if lookahead is not None:
        lookahead.epoch_end(module)
    return loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1)


@torch.inference_mode()
def predict_proba(model: nn.Module, batches: ArrayBatches, settings: DeviceSettings, tta: TTA = NO_TTA) -> np.ndarray:
    """Softmax probabilities (float32, rows in the order of batches.indices), averaged over `tta`'s views.

    Every prediction kit stores or prints comes from here (held-out fold, test set, kit predict), so
    they all go through the same views; the views of a batch share one forward pass."""
    model.eval()
    out = []
    for x, _ in batches:
        views = tta.expand(settings.to_device(x))  # made on the device: the copies never cross the bus
        with settings.autocast():
            logits = model(settings.to_device(views))  # a no-op, or channels_last again after a shift's padding
        out.append(tta.merge(torch.softmax(logits.float(), dim=1)))
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), np.float32)
