"""Tiny competitions of every layout, written into a test's temporary folder.

Each builder returns the pixels it wrote, so a test can check that they come back unchanged
(PNG is lossless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def images(n: int, size: int = 8, channels: int = 3, seed: int = 0) -> np.ndarray:
    """n random uint8 images, n x size x size x channels."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


def labels_csv(root: Path, labels=("cat", "dog") * 4, n_test: int = 3, size: int = 8, channels: int = 3,
               ext: str = ".png") -> dict:
    """trainLabels.csv (id, label), train/{id}.png, test/{id}.png, sampleSubmission.csv (test ids reversed)."""
    train_ids = [f"im{i}" for i in range(len(labels))]
    test_ids = [str(100 + i) for i in range(n_test)]
    train, test = images(len(labels), size, channels, 1), images(n_test, size, channels, 2)
    for id_, pixels in zip(train_ids, train):
        save(root / "train" / f"{id_}{ext}", pixels)
    for id_, pixels in zip(test_ids, test):
        save(root / "test" / f"{id_}{ext}", pixels)
    pd.DataFrame({"id": train_ids, "label": list(labels)}).to_csv(root / "trainLabels.csv", index=False)
    pd.DataFrame({"id": test_ids[::-1], "label": labels[0]}).to_csv(root / "sampleSubmission.csv", index=False)
    return {"train_ids": train_ids, "test_ids": test_ids, "train": train, "test": test, "labels": list(labels)}


def class_folders(root: Path, classes=("n01", "n02", "n03"), per_class: int = 3, n_test: int = 4, size: int = 8,
                  channels: int = 3) -> dict:
    """train/<class>/img<i>.png (the last class keeps its images one folder deeper), test/t<i>.png, no sample."""
    train, written = images(len(classes) * per_class, size, channels, 3), []
    for c, name in enumerate(classes):
        for i in range(per_class):
            inner = Path("images") if c == len(classes) - 1 else Path()
            save(root / "train" / name / inner / f"img{i}.png", train[c * per_class + i])
            written.append(((Path(name) / inner / f"img{i}").as_posix(), name))
    test = images(n_test, size, channels, 4)
    for i in range(n_test):
        save(root / "test" / f"t{i}.png", test[i])
    return {"train": train, "test": test, "written": written}


def npz(root: Path, n: int = 6, n_test: int = 2) -> dict:
    """train.npz with float images in [0, 1] as N x C x H x W, text labels and ids; test.npz without ids."""
    train = images(n, 8, 3, 5)
    test = images(n_test, 8, 3, 6)
    labels = np.array(["ant", "bee"] * (n // 2))
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "train.npz", images=train.transpose(0, 3, 1, 2) / 255.0, labels=labels,
             ids=np.array([f"r{i}" for i in range(n)]))
    np.savez(root / "test.npz", images=test)
    pd.DataFrame({"id": [str(i) for i in range(n_test)], "label": "ant"}).to_csv(root / "sample_submission.csv",
                                                                                index=False)
    return {"train": train, "test": test, "labels": labels}
