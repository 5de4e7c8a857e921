"""Learning from a blend: the fold rule checked directly, pseudo-label selection per fold, distillation
targets from the fold's own weights, the loss, and the student -> teacher dependency."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from typer.testing import CliRunner

from kit.cli import app
from kit.errors import RecipeError, StoreError
from kit.recipe import load_recipe
from kit.store import Store
from kit.teacher import Teacher
from kit.train import train_recipe
from kit.train.targets import TeacherLoss, one_hot, pack_targets

from .conftest import write_recipe

runner = CliRunner()


def read_fold(store: Store, competition: str, model: str, k: int) -> dict:
    return json.loads((store.fold_dir(competition, model, 0, k) / "fold.json").read_text())


# -- the loss -----------------------------------------------------------------------------------------


def test_packed_targets_without_a_teacher_are_the_plain_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(16, 5), torch.randint(0, 5, (16,))
    packed = torch.from_numpy(pack_targets(one_hot(y.numpy(), 5), None, np.ones(16)))
    for smoothing in (0.0, 0.1):
        ours = TeacherLoss(5, label_smoothing=smoothing)(logits, packed)
        assert torch.allclose(ours, F.cross_entropy(logits, y, label_smoothing=smoothing), atol=1e-6)


def test_distillation_term_is_kl_at_the_temperature_and_weights_scale_rows():
    torch.manual_seed(1)
    logits, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    teacher = torch.softmax(torch.randn(8, 4), 1)
    weight = torch.tensor([1.0, 0.5] * 4)
    packed = torch.from_numpy(pack_targets(one_hot(y.numpy(), 4), teacher.numpy(), weight.numpy()))
    t, a = 2.0, 0.3
    ce = F.cross_entropy(logits, y, reduction="none")
    soft = torch.softmax(torch.log(teacher) / t, 1)
    kl = F.kl_div(F.log_softmax(logits / t, 1), soft, reduction="none").sum(1) * t * t
    expected = (weight * ((1 - a) * ce + a * kl)).mean()
    assert torch.allclose(TeacherLoss(4, a, t)(logits, packed), expected, atol=1e-5)


# -- the fold rule, end to end ------------------------------------------------------------------------

# random labels on random images, and a test set that is a copy of the training set (Kaggle test sets
# hold duplicates): nothing generalises, so a student's held-out accuracy can only rise above chance by
# learning the held-out rows' labels, which is what a leak hands it
N, FOLDS = 96, 3


def memorisation_competition(root):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 8, 8, 3), dtype=np.uint8)
    labels = np.array(["a", "b"])[rng.integers(0, 2, N)]
    root.mkdir(parents=True)
    np.savez(root / "train.npz", images=images, labels=labels, ids=np.array([f"r{i}" for i in range(N)]))
    copy_of = rng.permutation(N)  # test row j is training row copy_of[j] (in the same order, kit refuses it)
    np.savez(root / "test.npz", images=images[copy_of], ids=np.array([f"t{i}" for i in range(N)]))
    return labels, copy_of


MEMORISER = {"competition": {"name": "mem", "layout": "npz", "root": "data/mem", "sample_submission": None},
             "model": {"arch": "vgg_small", "params": {"widths": [32, 64], "dropout": 0.0}},
             "cv__folds": FOLDS, "cv__seed": 0, "train__epochs": 25, "train__batch_size": 32,
             "train__optimizer": {"name": "adam", "lr": 0.005}}


@pytest.fixture
def memorising_teacher(workdir):
    """A store with folds of the memorisation competition and a teacher whose fold-k model memorised
    its training rows: certain of their test copies, undecided (0.5) on fold k's held-out rows' copies."""
    labels, copy_of = memorisation_competition(workdir / "data" / "mem")
    store = Store(workdir / "store")
    train_recipe(load_recipe(write_recipe(workdir / "recipes", "memo", **{**MEMORISER, "train__epochs": 1})), store)
    folds = store.folds(store.manifest("mem", "memo"))
    truth = one_hot((labels == "b").astype(int), 2)
    for k in range(FOLDS):
        fold_dir = store.fold_dir("mem", "memo", 0, k)
        oof = np.load(fold_dir / "oof.npz")
        seen = (folds.fold[copy_of] != k)[:, None]
        test = np.where(seen, truth[copy_of], 0.5).astype(np.float32)
        store.write_fold("mem", "memo", 0, k, oof_ids=oof["ids"], oof=oof["probs"], test_ids=np.load(
            fold_dir / "test.npz")["ids"], test=test, history=[], weights=(fold_dir / "weights.pt").read_bytes(),
            record=read_fold(store, "mem", "memo", k))
    return store, folds


def student_accuracy(workdir, store, name) -> float:
    recipe = write_recipe(workdir / "recipes", name, **MEMORISER,
                          teacher={"members": ["memo"], "pseudo_labels": {"threshold": 0.8}})
    return train_recipe(load_recipe(recipe), store).cv["accuracy"]


def test_fold_rule_keeps_a_memorising_teachers_held_out_labels_out_of_the_students_cv(
        workdir, memorising_teacher, monkeypatch):
    store, folds = memorising_teacher
    honest = student_accuracy(workdir, store, "student")
    for k in range(FOLDS):  # the fold's teacher passed only its own training rows' copies
        taught = read_fold(store, "mem", "student", k)["teacher"]["pseudo_labels"]
        assert taught["rows"] == int((folds.fold != k).sum())
    # the control, which shows the test can fail: the fold-averaged teacher, the usual recipe
    by_the_rule = Teacher.test_probs
    monkeypatch.setattr(Teacher, "test_probs", lambda self, fold: by_the_rule(self, None))
    leaky = student_accuracy(workdir, store, "naive")
    assert read_fold(store, "mem", "naive", 0)["teacher"]["pseudo_labels"]["rows"] == N
    assert leaky > 0.9, leaky  # memorised the held-out rows' labels through their test copies
    assert honest < 0.75, honest  # random labels: about chance


# -- selection, distillation targets ------------------------------------------------------------------


@pytest.fixture
def teacher_store(few_epochs_store):
    return Store(few_epochs_store)


def open_teacher(store, **config):
    from kit.recipe import TeacherConfig

    manifest = store.manifest("digits", "few_epochs")
    return Teacher.open(TeacherConfig(members=["few_epochs"], **config), store, "digits", "student",
                        store.folds(manifest), "student.yaml")


def test_pseudo_labels_are_each_folds_own_teachers_confident_test_rows(teacher_store):
    from kit.competition import load_competition

    teacher = open_teacher(teacher_store, pseudo_labels={"threshold": 0.9, "labels": "soft", "weight": 0.5})
    manifest = teacher_store.manifest("digits", "few_epochs")
    data = load_competition(teacher_store.competition_spec("digits"))
    counts = []
    for k in range(2):
        fold_test = teacher_store.assemble(manifest, folds=[k]).test
        train_idx, val_idx = teacher.folds.split(k)
        taught = teacher.teach(k, train_idx, data.train_images, data.test_images, "cpu")
        chosen = np.flatnonzero(fold_test.max(1) >= 0.9)
        n = len(data.train_images)
        assert np.array_equal(taught.rows[len(train_idx):], n + np.arange(len(chosen)))
        assert not np.isin(val_idx, taught.rows).any()  # held-out rows never train
        assert np.array_equal(taught.images[n:], data.test_images[chosen])
        C = len(teacher.classes)
        np.testing.assert_allclose(taught.labels[n:, :C], fold_test[chosen], atol=1e-6)  # soft labels
        assert np.all(taught.labels[n:, -1] == 0.5)
        counts.append(len(chosen))
    assert counts[0] != counts[1] or not np.array_equal(*[teacher_store.assemble(manifest, folds=[k]).test
                                                          for k in range(2)])


def test_distillation_targets_are_the_folds_own_weights_re_predicted(teacher_store):
    from kit.competition import load_competition

    teacher = open_teacher(teacher_store, distill={"weight": 0.5})
    data = load_competition(teacher_store.competition_spec("digits"))
    manifest = teacher_store.manifest("digits", "few_epochs")
    for k in range(2):
        _, val_idx = teacher.folds.split(k)
        # on the fold's held-out rows, fold k's weights give exactly its stored OOF (same views, same CPU)
        probs = teacher.row_probs(k, data.train_images[val_idx], "cpu")
        np.testing.assert_allclose(probs, teacher_store.assemble(manifest, folds=[k]).oof[val_idx], atol=1e-6)


# -- the dependency ----------------------------------------------------------------------------------


def test_student_records_its_teacher_and_refuses_a_changed_one(workdir, trained_store):
    student = write_recipe(workdir / "recipes", "student", teacher={"members": ["tiny_*"], "method": "caruana",
                                                                   "pseudo_labels": {"threshold": 0.3}})
    store = Store(trained_store)
    result = runner.invoke(app, ["train", str(student), "--folds", "0"])
    assert result.exit_code == 0, result.output
    recorded = store.manifest("digits", "student").teacher
    assert sorted(recorded.members) == ["tiny_resnet", "tiny_vgg"] and recorded.method == "caruana"
    assert read_fold(store, "digits", "student", 0)["teacher"]["rule"] == "the fold's own teacher models"

    before = sorted(p.name for p in (store.model_dir("digits", "student")).rglob("*"))
    retrain = runner.invoke(app, ["train", str(write_recipe(workdir / "recipes", "tiny_vgg")), "--force"])
    assert retrain.exit_code == 0, retrain.output
    refused = runner.invoke(app, ["train", str(student)])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "the teacher changed" in refused.output and "tiny_vgg retrained" in refused.output
    assert sorted(p.name for p in (store.model_dir("digits", "student")).rglob("*")) == before


def test_blend_warns_when_a_student_meets_its_teachers_members(workdir, trained_store):
    student = write_recipe(workdir / "recipes", "student", teacher={"members": ["tiny_vgg"],
                                                                   "distill": {"weight": 0.5, "temperature": 2}})
    assert runner.invoke(app, ["train", str(student)]).exit_code == 0
    result = runner.invoke(app, ["blend", "-m", "student", "-m", "tiny_vgg"])
    assert result.exit_code == 0, result.output
    assert "correlated by construction" in " ".join(result.output.split())
    alone = runner.invoke(app, ["blend", "-m", "student", "-m", "tiny_resnet"])
    assert "correlated" not in alone.output
    # a refit on every image is taught by every fold's teacher models: no fold of it is scored
    refit = runner.invoke(app, ["train", str(student), "--full"])
    assert refit.exit_code == 0, refit.output
    record = json.loads((Store(trained_store).full_dir("digits", "student", 0) / "fold.json").read_text())
    assert record["teacher"]["rule"] == "every fold's (a refit)" and "teacher_train_acc" in record["teacher"]["distill"]


@pytest.mark.parametrize("teacher, expected", [
    ({"members": ["nope"], "pseudo_labels": {}}, "teacher.members: no model 'nope'"),
    ({"members": ["tiny_vgg"], "method": "softt", "pseudo_labels": {}}, "teacher.method: unknown blender 'softt'"),
    ({"members": ["tiny_vgg"]}, "teacher: value error, a teacher teaches with pseudo_labels, distill, or both"),
    ({"members": ["tiny_vgg"], "pseudo_labels": {"threshold": 1.5}}, "teacher.pseudo_labels.threshold"),
])
def test_bad_teachers_are_one_line_before_anything_trains(workdir, trained_store, teacher, expected):
    student = write_recipe(workdir / "recipes", "student", teacher=teacher)
    result = runner.invoke(app, ["train", str(student)])
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not Store(trained_store).model_dir("digits", "student").joinpath("seed0").exists()


def test_a_student_is_not_its_own_teacher(workdir, trained_store):
    assert runner.invoke(app, ["train", str(write_recipe(workdir / "recipes", "student"))]).exit_code == 0
    student = write_recipe(workdir / "recipes", "student", teacher={"members": ["*"], "pseudo_labels": {}})
    result = runner.invoke(app, ["train", str(student)])
    assert result.exit_code == 2 and "matches the student 'student' itself" in " ".join(result.output.split())


def test_other_folds_are_refused(workdir, trained_store):
    student = write_recipe(workdir / "recipes", "student", cv__folds=3,
                           teacher={"members": ["tiny_vgg"], "pseudo_labels": {}})
    result = runner.invoke(app, ["train", str(student)])
    assert result.exit_code == 2 and "trained on other folds" in " ".join(result.output.split())
