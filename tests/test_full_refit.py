"""`kit train RECIPE --full`: the recipe refit on every training image, its test predictions beside the
folds, and `kit blend --full` blending them; the score stays the folds'."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kit.cli import app
from kit.store import Store
from kit.train.run import full_epochs
from tests.conftest import write_recipe

runner = CliRunner()


def kit(*args):
    return runner.invoke(app, [*map(str, args)])


def test_the_refit_trains_for_the_median_best_epoch_halves_rounded_up():
    assert full_epochs([3, 5, 4]) == 4
    assert full_epochs([2, 3]) == 3  # 2.5
    assert full_epochs([1, 1, 2]) == 1
    assert full_epochs([7]) == 7


@pytest.fixture
def recipe(workdir):
    # the folds keep their best epoch of 3 (lowest validation loss): the refit takes the median of those
    return write_recipe(workdir / "recipes", "refit", train__epochs=3)


def fold_records(store, name="refit"):
    return [json.loads(p.read_text()) for p in sorted((store / "digits" / "models" / name).glob("seed0/fold*/fold.json"))]


def test_full_refit_end_to_end_and_blend_uses_it(workdir, recipe):
    result = kit("train", recipe, "--full")
    assert result.exit_code == 2
    assert "has no finished folds" in result.output and "kit train" in result.output
    assert "Traceback" not in result.output
    assert not (workdir / "store" / "digits" / "models" / "refit").exists()  # nothing written

    assert kit("train", recipe).exit_code == 0
    store = workdir / "store"
    best = [r["best_epoch"] for r in fold_records(store)]
    result = kit("train", recipe, "--full")
    assert result.exit_code == 0, result.output
    full = store / "digits" / "models" / "refit" / "seed0" / "full"
    assert sorted(p.name for p in full.iterdir()) == ["fold.json", "history.csv", "test.npz", "weights.pt"]
    record = json.loads((full / "fold.json").read_text())
    assert record["epochs"] == full_epochs(best)
    assert record["train_rows"] == len(pd.read_csv(workdir / "data" / "digits" / "train.csv"))
    history = pd.read_csv(full / "history.csv")
    assert len(history) == record["epochs"] and history["val_loss"].isna().all()  # nothing was held out
    agreement = record["agreement_with_folds"]
    assert agreement["folds"] == [0, 1] and 0.5 < agreement["argmax"] <= 1.0
    assert "refit on all the training images" in result.output

    # a second --full finds the refit done and trains nothing; --force refits
    stamp = (full / "fold.json").stat().st_mtime_ns
    assert kit("train", recipe, "--full").exit_code == 0
    assert (full / "fold.json").stat().st_mtime_ns == stamp
    assert kit("train", recipe, "--full", "--force").exit_code == 0
    assert (full / "fold.json").stat().st_mtime_ns != stamp
    assert [r["best_epoch"] for r in fold_records(store)] == best  # --force with --full never touches the folds

    # the blend: the same OOF score, the refit's test probabilities, and the report says so
    folds_run = kit("blend", "--out", workdir / "folds.csv")
    full_run = kit("blend", "--full", "--out", workdir / "full.csv")
    assert folds_run.exit_code == 0 and full_run.exit_code == 0, full_run.output
    reports = {name: json.loads((workdir / f"{name}.report" / "report.json").read_text()) for name in ("folds", "full")}
    assert reports["full"]["blend"] == reports["folds"]["blend"]
    assert reports["full"]["test_predictions"]["refit"].startswith("full refit (1 seed")
    assert reports["folds"]["test_predictions"]["refit"] == "fold average"
    refit_test = np.load(full / "test.npz")["probs"]
    submission = pd.read_csv(workdir / "full.csv")
    member = Store(store).load_member("digits", "refit")
    assert not np.allclose(member.test, refit_test)  # the two sources differ, so the check below can fail
    labels = np.array(member.classes)[refit_test.argmax(1)]
    assert (submission["label"].astype(str).to_numpy() == labels).all()
    assert "from its full refit" in (workdir / "full.report" / "summary.md").read_text()

    # a refit whose file changed is refused where it is read, naming what to do
    np.savez(full / "test.npz", ids=np.load(full / "test.npz")["ids"], probs=refit_test[::-1])
    result = kit("blend", "--full", "--out", workdir / "again.csv")
    assert result.exit_code == 2 and "kit train --full" in result.output
    assert not (workdir / "again.csv").exists()


def test_blend_full_without_any_refit_warns_and_uses_the_folds(trained_store, workdir):
    result = kit("blend", "--full", "--out", workdir / "s.csv")
    assert result.exit_code == 0, result.output
    assert "no member has a full refit" in result.output


@pytest.mark.parametrize("head", ["linear", "logreg"])
def test_a_head_on_cached_features_refits_on_the_same_features(workdir, head):
    """The refit of an embeddings recipe trains its head on every row of the features the folds used."""
    recipe = write_recipe(workdir / "recipes", f"emb_{head}", model={"arch": "timm/test_resnet"}, image_size=16,
                          train__epochs=3, train__finetune={"mode": "embeddings", "head": {"name": head}})
    assert kit("train", recipe).exit_code == 0
    result = kit("train", recipe, "--full")
    assert result.exit_code == 0, result.output
    assert "features from the cache" in result.output  # not computed again
    full = workdir / "store" / "digits" / "models" / f"emb_{head}" / "seed0" / "full"
    record = json.loads((full / "fold.json").read_text())
    assert record["train_rows"] == len(pd.read_csv(workdir / "data" / "digits" / "train.csv"))
    assert record["epochs"] == (1 if head == "logreg" else full_epochs([r["best_epoch"] for r in
                                                                       fold_records(workdir / "store", f"emb_{head}")]))
    # a weak head on a random tiny backbone: the refit agrees with its folds well above the 0.1 that
    # unrelated predictions of 10 classes would
    assert record["agreement_with_folds"]["argmax"] > 0.2
    assert kit("blend", "--full", "--out", workdir / "s.csv").exit_code == 0


def test_full_refusals_are_one_line(workdir, trained_store):
    recipe = write_recipe(workdir / "recipes", "tiny_vgg")
    result = kit("train", recipe, "--full", "--folds", "0")
    assert result.exit_code == 2 and "takes no --folds" in result.output
    plateau = write_recipe(workdir / "recipes", "tiny_plateau", train__scheduler={"name": "plateau"})
    result = kit("train", plateau, "--full")
    assert result.exit_code == 2 and "train.scheduler.name" in result.output and "plateau" in result.output
    assert len(result.output.strip().splitlines()) == 1
    changed = write_recipe(workdir / "recipes", "tiny_vgg", train__epochs=2)  # not the recipe its folds were trained by
    result = kit("train", changed, "--full")
    assert result.exit_code == 2 and "the recipe changed" in result.output
    assert not (trained_store / "digits" / "models" / "tiny_vgg" / "seed0" / "full").exists()


def test_a_refit_killed_part_way_resumes_from_its_checkpoint(workdir, recipe, monkeypatch):
    assert kit("train", recipe).exit_code == 0
    import kit.train.run as run

    calls = {"n": 0}
    real_fit = run.fit

    def fit_then_die(*args, **kwargs):
        calls["n"] += 1
        result = real_fit(*args, **kwargs)
        if calls["n"] == 1:
            raise KeyboardInterrupt  # after training: the checkpoint holds every epoch, nothing is stored
        return result

    monkeypatch.setattr(run, "fit", fit_then_die)
    with pytest.raises(KeyboardInterrupt):
        kit_store = Store(workdir / "store")
        from kit.recipe import load_recipe
        run.train_recipe(load_recipe(recipe), kit_store, full=True)
    full = workdir / "store" / "digits" / "models" / "refit" / "seed0" / "full"
    assert (full / "checkpoint.pt").is_file() and not (full / "fold.json").exists()
    result = kit("train", recipe, "--full")
    assert result.exit_code == 0, result.output
    assert "resuming from the checkpoint" in result.output
    assert (full / "fold.json").is_file() and not (full / "checkpoint.pt").exists()
    shutil.rmtree(full)
