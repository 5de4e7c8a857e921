"""kit never damages what it reads: outputs refused inside the store or over the competition's files,
a refused or failed `kit train` leaves a finished model as it was, a full disk is one line, and a
diverged run writes no NaN. Every case through the CLI: exit 2, one line, no traceback, the store's
files unchanged (tests/test_bad_inputs.py's run_fails_cleanly)."""

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from kit.store import Store
from tests.conftest import write_recipe
from tests.test_bad_inputs import checksums, run_fails_cleanly

MODEL = Path("digits") / "models" / "tiny_vgg"


@pytest.mark.parametrize("inside", ["digits/sample_submission.csv", "digits/models/tiny_vgg/seed0/fold0/oof.npz",
                                    "digits/new.csv"])
def test_blend_out_inside_the_store_is_refused(trained_store, inside):
    run_fails_cleanly(trained_store, ["blend", "--out", trained_store / inside], "inside the prediction store")


def test_blend_out_through_a_symlink_into_the_store_is_refused(trained_store, workdir):
    (workdir / "link").symlink_to(trained_store / "digits")
    run_fails_cleanly(trained_store, ["blend", "--out", "link/sample_submission.csv"], "inside the prediction store")


def test_blend_out_that_is_a_folder_or_under_a_file_is_refused(trained_store, workdir):
    (workdir / "subs").mkdir()
    run_fails_cleanly(trained_store, ["blend", "--out", "subs"], "subs: --out: is a folder")
    (workdir / "afile").write_text("x")
    run_fails_cleanly(trained_store, ["blend", "--out", "afile/sub.csv"], "afile is a file, not a folder")
    (workdir / "sub.report").write_text("x")  # where the report folder goes
    run_fails_cleanly(trained_store, ["blend", "--out", "sub.csv"], "sub.report: --out's report folder: is a file")
    assert not (workdir / "sub.csv").exists()


@pytest.mark.parametrize("field", ["sample_submission", "solution", "train"])
def test_blend_out_over_a_competition_file_is_refused(trained_store, field):
    spec = Store(trained_store).competition_spec("digits")
    target = spec.path(getattr(spec, field))
    before = target.read_bytes()
    run_fails_cleanly(trained_store, ["blend", "--out", target], f"would overwrite the competition's {field}")
    assert target.read_bytes() == before


def test_augment_preview_out_is_checked_like_blends(trained_store, workdir):
    recipe = write_recipe(workdir / "recipes", "flips", augment={"transforms": [{"HorizontalFlip": {"p": 0.5}}]})
    run_fails_cleanly(trained_store, ["augment-preview", recipe, "--out", trained_store / "digits" / "p.png"],
                      "inside the prediction store")
    (workdir / "pngs").mkdir()
    run_fails_cleanly(trained_store, ["augment-preview", recipe, "--out", "pngs"], "is a folder")
    train_csv = workdir / "data" / "digits" / "train.csv"  # the recipe's competition (KIT_DATA)
    before = train_csv.read_bytes()
    run_fails_cleanly(trained_store, ["augment-preview", recipe, "--out", train_csv],
                      "would overwrite the competition's train")
    assert train_csv.read_bytes() == before


@pytest.fixture
def same_recipe(trained_store, workdir, monkeypatch):
    """The trained store's tiny_vgg recipe, as it was trained: with the competition's root it recorded."""
    monkeypatch.setenv("KIT_DATA", str(Store(trained_store).competition_spec("digits").root.parent))
    return write_recipe(workdir / "recipes", "tiny_vgg")


def test_failed_rerun_of_a_finished_model_leaves_its_manifest(trained_store, same_recipe):
    oof = trained_store / MODEL / "seed0" / "fold1" / "oof.npz"
    oof.write_bytes(oof.read_bytes()[:100])
    run_fails_cleanly(trained_store, ["train", same_recipe], "fold1/oof.npz")
    assert json.loads((trained_store / MODEL / "model.json").read_text())["status"] == "complete"


def test_rerun_of_a_finished_model_rewrites_nothing(trained_store, same_recipe):
    from typer.testing import CliRunner

    from kit.cli import app

    before = checksums(trained_store)
    result = CliRunner().invoke(app, ["train", str(same_recipe)])
    assert result.exit_code == 0, result.output
    assert "2 skipped" in result.output and checksums(trained_store) == before


@pytest.mark.parametrize("device, fragment", [("tpu", "'tpu' is not a device kit trains on"),
                                              ("cuda:7", "cuda:7"), ("", "expected auto, cpu, cuda or cuda:N")])
def test_a_bad_device_fails_before_the_store_is_touched(trained_store, workdir, device, fragment):
    import torch

    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    recipe = write_recipe(workdir / "recipes", "new_model")
    run_fails_cleanly(trained_store, ["train", recipe, "--device", device], fragment)
    assert not (trained_store / "digits" / "models" / "new_model").exists()
    run_fails_cleanly(trained_store, ["predict", "tiny_vgg", recipe, "--device", device], fragment)


def test_cuda_without_cuda_is_one_line(trained_store, workdir, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = write_recipe(workdir / "recipes", "new_model")
    run_fails_cleanly(trained_store, ["train", recipe, "--device", "cuda"], "this machine has no CUDA device")
    assert not (trained_store / "digits" / "models" / "new_model").exists()


def fails_keeping_what_was_there(store: Path, args: list, fragment: str) -> str:
    """Exit 2, the error one line holding `fragment`, no traceback. The run may have begun training a new
    model (its progress lines come first), but every file the store held before is unchanged and no
    temporary file is left."""
    from typer.testing import CliRunner

    from kit.cli import app

    before = checksums(store)
    result = CliRunner().invoke(app, [str(a) for a in args])
    output = result.output.strip()
    assert result.exit_code == 2 and "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and output.splitlines()[-1] == errors[0] and fragment in errors[0], output
    after = checksums(store)
    assert {k: after.get(k) for k in before} == before, "a file already in the store changed"
    assert not list(store.rglob("*.tmp")), "a temporary file was left"
    return output


def _disk_full_after(monkeypatch, writes: int):
    """os.fsync as on a full disk from the `writes`+1-th atomic write on (what kit/fileio.py calls last)."""
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr("kit.fileio.os.fsync", fsync)


@pytest.mark.parametrize("writes", [0, 2, 4])  # the model's first file; its first checkpoint; in its first fold
def test_a_full_disk_during_train_is_one_line_and_damages_nothing(trained_store, workdir, monkeypatch, writes):
    recipe = write_recipe(workdir / "recipes", "new_model")
    _disk_full_after(monkeypatch, writes)
    output = fails_keeping_what_was_there(trained_store, ["train", recipe], "cannot be written (No space left on device)")
    assert "new_model" in output and "free some space" in output, output


def test_a_full_disk_during_blend_keeps_the_old_submission(trained_store, workdir, monkeypatch):
    out = workdir / "sub.csv"
    out.write_text("the old submission\n")
    _disk_full_after(monkeypatch, 0)
    output = run_fails_cleanly(trained_store, ["blend", "--out", out], "sub.csv: cannot be written (No space left")
    assert "it was left as it was" in output
    assert out.read_text() == "the old submission\n" and not list(workdir.glob(".sub.csv.*"))


def test_a_read_only_output_folder_is_one_line(trained_store, workdir, monkeypatch):
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # root ignores chmod: the refusal as the OS gives it
    run_fails_cleanly(trained_store, ["blend", "--out", workdir / "ro" / "sub.csv"],
                      "sub.csv: cannot be written (Permission denied); nothing was written")


def test_a_store_that_is_a_file_is_refused(workdir):
    (workdir / "store").write_text("not a folder")
    recipe = write_recipe(workdir / "recipes", "tiny")
    run_fails_cleanly(workdir, ["train", recipe, "--store", "store"], "is a file, not a folder")


def test_a_diverged_run_stops_and_writes_no_nan(trained_store, workdir, monkeypatch):
    import kit.train.loop as loop

    real = loop._train_epoch
    monkeypatch.setattr(loop, "_train_epoch", lambda *a, **k: (float("nan"), real(*a, **k)[1]))
    recipe = write_recipe(workdir / "recipes", "diverged", train__optimizer={"name": "sgd", "lr": 1e6})
    output = fails_keeping_what_was_there(trained_store, ["train", recipe],
                                          "seed 0, fold 0: epoch 1: the training loss is not finite (NaN or inf)")
    assert str(recipe) in output and "lower train.optimizer.lr (now 1e+06)" in output
    fold = trained_store / "digits" / "models" / "diverged" / "seed0" / "fold0"
    assert not (fold / "oof.npz").exists() and not (fold.parent.parent / "metrics.json").exists()


def test_non_finite_predictions_are_not_written(trained_store, workdir, monkeypatch):
    import kit.train.run as run

    real = run.predict_proba

    def nan_in_test(model, batches, settings, tta=None):
        probs = real(model, batches, settings, tta)
        if batches.labels is None:  # the test set
            probs[3] = np.nan
        return probs

    monkeypatch.setattr(run, "predict_proba", nan_in_test)
    recipe = write_recipe(workdir / "recipes", "nan_test")
    fails_keeping_what_was_there(trained_store, ["train", recipe], "best epoch 1: its test predictions are not finite")
    assert not list((trained_store / "digits" / "models" / "nan_test").rglob("*.npz"))


def test_written_files_get_the_permissions_open_would_give(workdir):
    """Atomic writes go through mkstemp, whose files are private (0600): a submission, a page or a cache file
    renamed from one would be unreadable to the rest of a team. They get open()'s mode (0666 less the umask)."""
    import os
    import stat

    from kit import fileio

    path = workdir / "submissions" / "x.csv"
    fileio.write_text(path, "id,label\n")
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask == fileio.NEW_FILE_MODE
