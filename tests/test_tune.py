"""kit tune: a tiny search on digits (2 folds x 1 epoch, widths 8/16) that writes its trials as members and the best
recipe; a search killed mid-trial that continues without repeating what finished; a bad learning rate pruned; bad
input refused in one line before anything trains."""

import hashlib
import multiprocessing
import os
import signal
import time

import pytest
import yaml
from typer.testing import CliRunner

optuna = pytest.importorskip("optuna", reason="kit tune needs Optuna (pip install 'kit[tune]')")

from kit.cli import app  # noqa: E402
from kit.errors import RecipeError  # noqa: E402
from kit.recipe import load_recipe  # noqa: E402
from kit.store import Store  # noqa: E402
from kit.tune import parse_duration, tune_recipe  # noqa: E402
from kit.tune.space import check_space, parse_space, sample  # noqa: E402
from tests.conftest import write_recipe  # noqa: E402

runner = CliRunner()
LR = {"train.optimizer.lr": {"log_uniform": [3.0e-3, 3.0e-2]}}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def said(result) -> str:
    return " ".join(result.output.split())


def checksums(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def study(store: Store, name: str):
    from kit.tune.run import journal_storage

    return optuna.load_study(study_name=name, storage=journal_storage(store.tune_dir("digits", name) / "study.journal"))


def test_a_tiny_search_writes_its_trials_as_members_and_the_best_recipe(workdir):
    tune = {**LR, "model.params.widths": {"choice": [[8, 16], [16, 32]]}, "pruner": {"name": "none"}}
    path = write_recipe(workdir / "recipes", "r", tune=tune)
    result = invoke("tune", path, "--trials", 3, "--metric", "log_loss")
    assert result.exit_code == 0, result.output
    assert "best: trial" in said(result) and "kit blend -m 'r-t*' --method caruana" in said(result)

    store = Store(workdir / "store")
    trials = study(store, "r").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    # trial 0 is the hand-written recipe's own values; every trial is a finished model with its resolved recipe
    assert trials[0].params == {"train.optimizer.lr": 0.01, "model.params.widths": "[8, 16]"}
    for t in trials:
        manifest = store.manifest("digits", f"r-t{t.number}")
        assert manifest.complete and manifest.cv["log_loss"] == pytest.approx(t.value)
        stored = yaml.safe_load((store.model_dir("digits", f"r-t{t.number}") / "recipe.yaml").read_text())
        assert stored["train"]["optimizer"]["lr"] == t.params["train.optimizer.lr"]
        assert "tune" not in stored
    folder = store.tune_dir("digits", "r")
    for name in ("study.journal", "trials.csv", "best.yaml", "summary.md", "history.png", "importances.png"):
        assert (folder / name).is_file(), name
    best = min(trials, key=lambda t: t.value)
    assert f"Trial {best.number} (model `r-t{best.number}`)" in (folder / "summary.md").read_text()

    # the best recipe is one kit train takes: the trial's model, already in the store, so nothing retrains
    recipe = load_recipe(folder / "best.yaml")
    assert recipe.name == f"r-t{best.number}"
    assert recipe.hash == store.manifest("digits", recipe.name).recipe_hash
    result = invoke("train", folder / "best.yaml")
    assert result.exit_code == 0 and "0 folds trained, 2 skipped" in said(result), result.output

    # the tune: section is no part of the recipe's hash
    plain = write_recipe(workdir / "recipes", "r_plain")
    assert load_recipe(path).hash == load_recipe(plain).hash

    result = invoke("blend", "-m", "r-t*", "--method", "caruana", "--out", workdir / "submissions" / "t.csv")
    assert result.exit_code == 0, result.output
    assert "r-t0" in result.output and "blend:caruana" in result.output

    before = checksums(workdir / "store" / "digits" / "models")
    result = invoke("tune", path, "--trials", 3)  # the study is done: nothing trains, its metric is kept
    assert result.exit_code == 0, result.output
    assert "already holds 3 trials" in said(result) and "log_loss CV" in said(result)
    assert checksums(workdir / "store" / "digits" / "models") == before


def _tune_in_child(path, store_root, trials):
    import torch

    torch.set_num_threads(1)
    tune_recipe(path, Store(store_root), trials)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_killed_mid_trial_the_rerun_takes_it_up_and_repeats_nothing(workdir):
    path = write_recipe(workdir / "recipes", "k", train__epochs=2, tune={**LR, "pruner": {"name": "none"}})
    store = Store(workdir / "store")
    tune_recipe(path, store, 1)  # trial 0, here: also imports all a forked child needs
    t0 = checksums(store.model_dir("digits", "k-t0"))

    # a forked child runs trial 1 and is SIGKILLed in the second epoch of trial 1's fold 1 (its checkpoint
    # of epoch 1 is there): no journal or fold write is under way then
    child = multiprocessing.get_context("fork").Process(target=_tune_in_child, args=(path, store.root, 2))
    child.start()
    checkpoint = store.fold_dir("digits", "k-t1", 0, 1) / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert checkpoint.is_file(), "the child finished trial 1 before it could be killed"
    states = [t.state.name for t in study(store, "k").get_trials()]
    assert states == ["COMPLETE", "RUNNING"]
    fold0 = checksums(store.fold_dir("digits", "k-t1", 0, 0))

    messages = []

    class Listen:
        def message(self, text):
            messages.append(text)

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    summary = tune_recipe(path, store, 2, reporter=Listen())
    assert any("taking up trial 1" in m for m in messages)
    assert [r["state"] for r in summary.trials] == ["complete"] * 2  # no trial asked twice, none left running
    assert checksums(store.model_dir("digits", "k-t0")) == t0  # trial 0 never retrained
    assert checksums(store.fold_dir("digits", "k-t1", 0, 0)) == fold0  # nor trial 1's finished fold
    assert any("resuming from the checkpoint after epoch 1" in m for m in messages)  # its fold 1 resumed
    assert store.manifest("digits", "k-t1").complete


def _tune_and_count(path, store_root, trials, out):
    import torch

    torch.set_num_threads(1)
    out.write_text(str(tune_recipe(path, Store(store_root), trials).ran))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_two_processes_share_one_study_and_never_run_the_same_trial(workdir):
    path = write_recipe(workdir / "recipes", "s", tune={**LR, "pruner": {"name": "none"}})
    store = Store(workdir / "store")
    tune_recipe(path, store, 1)  # trial 0 (the recipe's own values), here: also imports all a forked child needs

    # two processes started together on the same study, each asked for 3 trials in all: 2 more between them
    fork = multiprocessing.get_context("fork")
    counts = [workdir / f"ran{i}.txt" for i in range(2)]
    children = [fork.Process(target=_tune_and_count, args=(path, store.root, 3, out)) for out in counts]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=600)
    assert [child.exitcode for child in children] == [0, 0]
    ran = [int(out.read_text()) for out in counts]
    assert sum(ran) == 2, ran  # no trial run twice, none beyond --trials

    trials = study(store, "s").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert study(store, "s").user_attrs["processes"] == 3  # each process drew from its own seed
    assert trials[1].params != trials[2].params
    assert sorted(store.model_names("digits")) == ["s-t0", "s-t1", "s-t2"]
    for t in trials:
        assert store.manifest("digits", f"s-t{t.number}").cv["accuracy"] == pytest.approx(t.value)


def test_a_ruinous_learning_rate_is_pruned_and_left_out_of_blends(workdir):
    path = write_recipe(workdir / "recipes", "p", train__batch_size=32,
                        tune={"train.optimizer.lr": {"log_uniform": [1.0e-7, 1.0e-1]}, "pruner": {"startup_trials": 1}})
    store = Store(workdir / "store")
    summary = tune_recipe(path, store, 2, enqueue=[{"train.optimizer.lr": 1.0e-7}])
    good, bad = summary.trials
    assert good["state"] == "complete" and bad["state"] == "pruned"
    assert bad["params"]["train.optimizer.lr"] == 1.0e-7
    assert bad["folds_done"] == 1 and bad["value"] is None and bad["partial"] < good["value"]
    assert summary.best["number"] == 0  # a pruned trial's partial score is never ranked
    assert not store.manifest("digits", "p-t1").complete  # left unfinished
    assert not store.is_fold_done("digits", "p-t1", 0, 1)
    result = invoke("blend", "-m", "p-t*", "--out", workdir / "submissions" / "p.csv")
    assert result.exit_code == 0, result.output
    assert "dropped p-t1: is not finished" in said(result)


def test_values_drawn_again_are_told_the_finished_trials_score_and_another_recipes_study_is_refused(workdir):
    tune = {"model.params.widths": {"choice": [[8, 16], [16, 32]]}, "pruner": {"name": "none"}}
    path = write_recipe(workdir / "recipes", "d", tune=tune)
    store = Store(workdir / "store")
    summary = tune_recipe(path, store, 2, enqueue=[{"model.params.widths": [8, 16]}])  # trial 0's values again
    first, again = summary.trials
    assert again["state"] == "complete" and again["duplicate_of"] == 0 and again["value"] == first["value"]
    assert store.model_names("digits") == ["d-t0"]  # nothing trained for trial 1
    assert summary.best["number"] == 0

    # the recipe changed outside tune: (the study's hash is another recipe's), or another metric: refused
    before = checksums(workdir / "store")
    for changes, args, fragment in (({"train__batch_size": 32}, (), "study.journal: a study of another recipe"),
                                    ({}, ("--metric", "log_loss"), "--metric: the study of 'd' (")):
        changed = write_recipe(workdir / "recipes", "d", tune=tune, **changes)
        result = invoke("tune", changed, "--trials", 3, *args)
        assert result.exit_code == 2, result.output
        assert fragment in said(result)
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert checksums(workdir / "store") == before


@pytest.mark.parametrize("tune, fragment", [
    ({"train.optimizer.lrr": {"log_uniform": [1e-3, 1e-2]}},
     "r.yaml: tune.train.optimizer.lrr: train.optimizer has no field 'lrr' (did you mean 'lr'?)"),
    ({"train.epochs": {"int": [0, 5]}}, "r.yaml: tune.train.epochs = 0: train.epochs: input should be greater than 0"),
    ({"model.arch": {"choice": ["vgg_small", "vgg_smol"]}},
     "r.yaml: tune.model.arch = vgg_smol: model.arch: unknown architecture 'vgg_smol'"),
    ({"train.optimizer.lr": {"uniform": [0.1, 0.01]}}, "r.yaml: tune.train.optimizer.lr.uniform: low must be below high"),
    ({"train.epochs": {"uniform": [1, 3]}}, "tune.train.epochs = 1.754: train.epochs: input should be a valid integer"),
    ({"cv.folds": {"int": [2, 3]}}, "tune.cv.folds: cv cannot be searched"),
    ({"augment": {"choice": ["light", "mediun"]}}, "tune.augment = mediun: augment.transforms.0: 'mediun' is not"),
    ({"model.params.convs_per_stage": {"int": [1, 2], "when": {"model.arch": "vgg_small"}}},
     "no choice in tune: sets model.arch"),
    ({"augment.mixup.p": {"uniform": [0, 0.8]}, "augment.cutmix.p": {"uniform": [0, 0.8]}},
     "mixup.p + cutmix.p is"),
])
def test_bad_space_is_one_line_exit_2_nothing_trained(workdir, tune, fragment):
    path = write_recipe(workdir / "recipes", "r", tune=tune)
    result = invoke("tune", path, "--trials", 2)
    assert result.exit_code == 2, result.output
    assert fragment in said(result)
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (workdir / "store").exists()  # nothing written (a study's store unchanged: the test below)


def test_conditional_fields_are_drawn_only_where_their_choice_holds(workdir):
    tune = {"model.arch": {"choice": ["vgg_small", "resnet_small"]},
            "model.params.convs_per_stage": {"int": [1, 2], "when": {"model.arch": "vgg_small"}},
            "model.params.blocks_per_stage": {"int": [1, 2], "when": {"model.arch": "resnet_small"}}}
    path = write_recipe(workdir / "recipes", "c", model={"arch": "vgg_small", "params": {"widths": [8, 16]}}, tune=tune)
    raw = yaml.safe_load(path.read_text())
    space = parse_space(raw["tune"], str(path))
    assert check_space(space, raw, "c-t0") >= 4  # each arch with both ends of its own field
    recipe, chosen = sample(space, raw, optuna.trial.FixedTrial({"model.arch": "resnet_small",
                                                                 "model.params.blocks_per_stage": 2}))
    assert recipe["model"] == {"arch": "resnet_small", "params": {"widths": [8, 16], "blocks_per_stage": 2}}
    assert chosen == {"model.arch": "resnet_small", "model.params.blocks_per_stage": 2}
    with pytest.raises(RecipeError, match="'resnet' is none of the options tune: gives model.arch"):
        parse_space({**tune, "model.params.dropout": {"uniform": [0, 0.5], "when": {"model.arch": "resnet"}}}, "x.yaml")


def test_durations():
    assert [parse_duration(t) for t in ("2h", "30m", "90s", "1h30m", "600", "1.5h")] == [7200, 1800, 90, 5400, 600, 5400]
    with pytest.raises(Exception, match="--timeout: 'soon' is not a duration"):
        parse_duration("soon")


def test_trials_run_through_the_process_executor(workdir, monkeypatch):
    """kit tune --executor process: each trial's folds are jobs of local worker processes (docs/distributed.md),
    and the trials end as complete members scored by their CV, as in a serial search."""
    import concurrent.futures

    pools = []

    class CountedPool(concurrent.futures.ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            pools.append(args[0])
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", CountedPool)  # kit/train/executors.py's pool
    tune = {**LR, "pruner": {"name": "none"}}
    path = write_recipe(workdir / "recipes", "px", tune=tune)
    result = invoke("tune", path, "--trials", 2, "--metric", "log_loss", "--executor", "process", "--workers", 2)
    assert result.exit_code == 0, result.output
    store = Store(workdir / "store")
    trials = study(store, "px").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2
    for t in trials:
        manifest = store.manifest("digits", f"px-t{t.number}")
        assert manifest.complete and manifest.cv["log_loss"] == pytest.approx(t.value)
    assert len(pools) == 2 * 2  # 2 trials x 2 folds, each a job submitted to the worker processes
