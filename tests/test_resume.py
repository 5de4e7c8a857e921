"""A run killed mid-fold continues from its last finished epoch and ends where an uninterrupted run ends."""

import numpy as np
import pytest

from kit.progress import Reporter
from kit.recipe import load_recipe
from kit.store import Store
from kit.train import train_recipe
from tests.conftest import write_recipe


class KillAfterEpochs(Reporter):
    """Raises (like a SIGINT would) once `n` epochs have finished and been checkpointed."""

    def __init__(self, n):
        self.n, self.finished = n, 0

    def advance(self, key, steps=1, description=None):
        if description and description.startswith("epoch "):
            self.finished += 1
            if self.finished == self.n:
                raise KeyboardInterrupt


AUGMENTED = {"transforms": [{"Affine": {"translate_percent": 0.1, "rotate": [-10, 10], "p": 0.8}}, "CoarseDropout"],
             "mixup": {"p": 0.4, "alpha": 0.4}, "cutmix": {"p": 0.4}}
# flips, shifts and holes only: augmented on whole batches (kit/train/batch_augment.py), its generator checkpointed
ON_BATCHES = {"transforms": ["light", {"CoarseDropout": {"p": 0.5}}]}


# airbench's method (docs/airbench.md): the Lookahead average, the alternating flip's pass count and the
# data-made whitening filters are part of the resumed state too
AIRBENCH = {"model": {"arch": "airbench", "params": {"widths": [8, 16, 16], "whiten_bias_epochs": 1}},
            "train__optimizer": {"name": "sgd", "lr": 11.5, "lr_per": 256, "momentum": 0.85, "nesterov": True,
                                 "weight_decay": 0.0153, "norm_bias_lr_scale": 64},
            "train__scheduler": {"name": "triangle"}, "train__lookahead": {"start_epoch": 0, "every": 3},
            "train__init_images": 300,
            "augment": {"alternating_flip": True,
                        "transforms": [{"Affine": {"translate_px": [-1, 1], "border_mode": 4, "p": 1.0}}]}}


@pytest.mark.parametrize("kill_after, augment", [(1, None), (4, None), (1, AUGMENTED), (2, ON_BATCHES), (2, AIRBENCH)],
                         ids=["mid-fold-0", "mid-fold-1", "augmented-mixed", "augmented-on-batches",
                              "airbench-method"])  # fold 0 done before the 2nd
def test_resumed_run_equals_uninterrupted_run(workdir, kill_after, augment):
    changes = dict(train__epochs=3, train__scheduler={"name": "cosine"},
                   model={"arch": "vgg_small", "params": {"widths": [8, 16], "dropout": 0.3}})
    if augment is AIRBENCH:
        changes.update(AIRBENCH)
    elif augment:  # the pipeline's draws and the mixer's are part of the resumed state too
        changes["augment"] = augment
    store = Store(workdir / "store")
    straight = train_recipe(load_recipe(write_recipe(workdir / "recipes", "straight", **changes)), store)

    path = write_recipe(workdir / "recipes", "killed", **changes)
    with pytest.raises(KeyboardInterrupt):
        train_recipe(load_recipe(path), store, KillAfterEpochs(kill_after))
    fold = kill_after // 3
    checkpoint = workdir / "store" / "digits" / "models" / "killed" / "seed0" / f"fold{fold}" / "checkpoint.pt"
    assert checkpoint.is_file()
    resumed = train_recipe(load_recipe(path), store)
    assert resumed.folds_skipped == fold
    assert not checkpoint.exists()  # removed once the fold is done
    a, b = store.load_member("digits", "straight"), store.load_member("digits", "killed")
    assert np.array_equal(a.oof, b.oof) and np.array_equal(a.test, b.test)
    assert resumed.cv["accuracy"] == straight.cv["accuracy"]


def test_checkpoint_of_another_recipe_or_damaged_is_not_resumed(tmp_path):
    from kit.train.checkpoint import EpochCheckpoint

    path = tmp_path / "checkpoint.pt"
    EpochCheckpoint(path, key="recipe-a").save({"history": [1]})
    assert EpochCheckpoint(path, key="recipe-a").load()["history"] == [1]
    assert EpochCheckpoint(path, key="recipe-b").load() is None
    path.write_bytes(path.read_bytes()[:20])  # truncated
    assert EpochCheckpoint(path, key="recipe-a").load() is None
