"""The feature cache: a frozen backbone's pooled features, computed once, reused by every fold, seed and head.

When the backbone does not train (`finetune.mode: linear_probe` without augmentation, or
`embeddings`), each image's features are the same in every epoch, fold and seed, so kit computes
them once and trains only the head on them: seconds instead of hours on a CPU.

    <image cache>/features/<key>/      beside the decoded images (store/<competition>/features/ for
        train.npy  test.npy            competitions without an image cache); float32 N x V x D,
        meta.json                      V the TTA views; meta.json written last, as the image cache does

The key is everything the features depend on: the backbone (architecture and parameters), the
weights (the file's SHA-256, so a replaced file is noticed), the input size and normalisation,
the TTA views, and the images (the data fingerprint). Changing the head, the folds, the seeds or
the optimiser never recomputes them; changing any of the above makes a new key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import fileio
from .progress import SILENT, Reporter
from .tta import TTA

FEATURES_VERSION = 1
FEATURE_TASK = "features"


@dataclass
class CachedFeatures:
    train: np.ndarray  # float32 N x V x D (a read-only memory map)
    test: np.ndarray
    folder: Path
    computed: bool  # this call computed them (else they were found cached)

    @property
    def dim(self) -> int:
        return int(self.train.shape[-1])


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_identity(pretrained: bool | str) -> str:
    """What the backbone's weights are: a file's (or a weight package's file's) content hash, timm's download by name."""
    if not isinstance(pretrained, str):
        return str(pretrained)  # True: timm's published weights for the (tagged) architecture named in the key
    from .models.weights import check_file

    path = check_file(pretrained)
    stat = path.stat()
    return _file_sha256(str(path), stat.st_mtime_ns, stat.st_size)


def feature_key(arch: str, params: dict, pretrained: bool | str, size: int, mean, std, tta: TTA,
                data_fingerprint: str) -> str:
    described = {"version": FEATURES_VERSION, "arch": arch, "params": params,
                 "weights": weights_identity(pretrained), "size": size,
                 "mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std],
                 "views": list(tta.views), "shift": tta.shift if tta.record != "none" else None,
                 "data": data_fingerprint}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]


def open_cached(folder: Path, key: str) -> CachedFeatures | None:
    from .competition.cache import open_arrays  # the image cache's reader: the same layout and checks

    found = open_arrays(folder, key)
    return None if found is None else CachedFeatures(found[0], found[1], folder, computed=False)


def load_or_compute(folder: Path, key: str, backbone: torch.nn.Module, splits: dict, settings, tta: TTA,
                    reporter: Reporter = SILENT) -> CachedFeatures:
    """The features of `splits` ({'train': batches, 'test': batches}) from `folder`, computed now unless cached.

    Written to a temporary folder and renamed into place, so a killed run never leaves features that
    a later one trusts."""
    cached = open_cached(folder, key)
    if cached is not None:
        return cached
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        total = sum(len(batches) for batches in splits.values())
        reporter.start(FEATURE_TASK, f"features {folder.name[:8]}", total=total)
        shapes = {}
        try:
            for split, batches in splits.items():
                features = extract(backbone, batches, settings, tta, lambda: reporter.advance(FEATURE_TASK, 1))
                np.save(work / f"{split}.npy", features)
                shapes[f"{split}_shape"] = list(features.shape)
        finally:
            reporter.finish(FEATURE_TASK)
        fileio.write_json(work / "meta.json", {"key": key, **shapes})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CachedFeatures(**{s: np.load(folder / f"{s}.npy", mmap_mode="r") for s in splits}, folder=folder,
                          computed=True)


@torch.inference_mode()
def extract(backbone: torch.nn.Module, batches, settings, tta: TTA, on_batch=lambda: None) -> np.ndarray:
    """float32 (N, V, D): each row's pooled features (timm's pre-logits) under each of `tta`'s views."""
    backbone.eval()
    out = np.empty((len(batches.indices), len(tta.views), 0), np.float32)
    start = 0
    for x, _ in batches:
        x = settings.to_device(x)
        views = tta.expand(x)  # (V*B, C, H, W), view after view
        with settings.autocast():
            pooled = pooled_features(backbone, settings.to_device(views))
        pooled = pooled.float().view(len(tta.views), len(x), -1).transpose(0, 1).cpu().numpy()
        if out.shape[-1] == 0:
            out = np.empty((len(batches.indices), len(tta.views), pooled.shape[-1]), np.float32)
        out[start:start + len(x)] = pooled
        start += len(x)
        on_batch()
    return out


def pooled_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the classifier sees: timm's forward_head(pre_logits=True), else the input of the last linear layer."""
    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        return model.forward_head(model.forward_features(x), pre_logits=True)
    captured = []
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    hook = linears[-1].register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    try:
        model(x)
    finally:
        hook.remove()
    return captured[0].flatten(1)
