"""`kit blend` as a user types it, on a synthetic store: member choice, parameters, bad input."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kit.blend import list_blenders
from kit.blend.synthetic import write_store
from kit.cli import BLENDERS, app
from kit.lock import exclusive
from kit.store import Store
from tests.blend_fixtures import store_of_accuracies

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIT_SUBMISSIONS", str(tmp_path / "submissions"))
    monkeypatch.setattr("kit.report.plot_matrix", lambda path, *args, **kwargs: path)  # PNGs: test_blend_members
    store_of_accuracies(tmp_path / "store", {"weak": 0.45, "fair": 0.7, "good": 0.8, "best": 0.92}, seeds=2)
    return tmp_path / "store"


def invoke(store, *args):
    return runner.invoke(app, ["blend", "--store", str(store), *map(str, args)])


def test_min_cv_top_and_parameters_from_the_command_line(store):
    result = invoke(store, "--method", "soft,caruana", "--min-cv", 0.6, "--top", 2, "-p", "caruana.iterations=10",
                    "--pick", "caruana")
    assert result.exit_code == 0, result.output
    assert "dropped weak: accuracy" in result.output and "dropped fair: accuracy" in result.output
    assert "beyond --top 2" in result.output and "times_selected" in result.output
    assert "submission:" in result.output and (store.parent / "submissions" / "syn-caruana.csv").is_file()


def test_weights_choose_the_weighted_vote_and_seeds_can_be_split(store):
    result = invoke(store, "--weights", "best@s1=1", "--split-seeds", "--out", store.parent / "w.csv")
    assert result.exit_code == 0, result.output
    assert "blend:weighted" in result.output and "best@s1" in result.output
    assert (store.parent / "w.report" / "summary.md").is_file()


def _tree(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, fragment", [
    (["-p", "caruana.iters=5", "--method", "caruana"], "has no parameter 'iters' (did you mean 'iterations'?)"),
    (["-p", "caruana.iterations=lots", "--method", "caruana"], "caruana.iterations: expected int"),
    (["-p", "iterations=5"], "no blender in --method (soft) has a parameter 'iterations'"),
    (["--weights", "1,2"], "--weights: 2 given for 4 members"),
    (["--min-cv", "0.99"], "--min-cv 0.99: keeps no member; the best accuracy is"),
    (["--top", "0"], "--top: expected a positive number"),
    (["--pick", "lgbm"], "--pick: 'lgbm' is not among the blenders asked for (soft)"),
    (["--method", "all", "--pick", "weighted"], "--pick: blend:weighted needs weights (e.g. --weights 0.7,0.3); "
                                                "--method all leaves it out without them"),
    (["--method", ","], "--method: expected a blender's name"),
    (["--metric", "auc"], "--metric: 'auc' is not one of accuracy, log_loss, macro_f1"),
    (["--method", "caruana", "-p", "caruana.metric=f1"], "caruana.metric: 'f1' is not one of"),
])
def test_bad_blend_options_are_one_red_line_and_write_nothing(store, args, fragment):
    before = _tree(store)
    result = invoke(store, *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert _tree(store) == before and not (store.parent / "submissions").exists()


def test_kit_blend_reads_the_store_without_importing_torch(store):
    """`kit blend` reads only probabilities: the whole command, run in a fresh interpreter, leaves torch unimported."""
    code = ("import sys; from kit.cli import app\n"
            "try:\n    app(['blend', '--store', sys.argv[1], '--method', 'soft,caruana'])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('torch imported:', 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, env=env,
                          cwd=store.parent)
    assert done.returncode == 0, done.stderr
    assert "submission:" in done.stdout and done.stdout.strip().endswith("torch imported: False"), done.stdout


def _names(listing: str) -> list[str]:
    """'soft, optimized (log-loss weights), `lgbm`' -> ['soft', 'optimized', 'lgbm']."""
    return [re.sub(r"\(.*?\)", "", name).strip(" `") for name in listing.split(",")]


def test_every_registered_blender_is_listed_in_the_help_the_readme_and_the_docs():
    registered = list_blenders()
    assert _names(BLENDERS) == registered
    help_text = " ".join(runner.invoke(app, ["blend", "--help"]).output.replace("│", " ").split())
    assert _names(re.search(r"Blender: (.*?);", help_text).group(1)) == registered
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert _names(re.search(r"`--method` (.*?), or `all`", readme).group(1)) == registered
    table = re.findall(r"^\| `(\w+)` \|", (ROOT / "docs" / "blending.md").read_text(), flags=re.M)
    assert table == registered


def test_method_all_leaves_out_the_weighted_vote_without_weights(store):
    result = invoke(store, "--method", "all", "-p", "lgbm.n_estimators=5", "-p", "caruana.iterations=5")
    assert result.exit_code == 0, result.output
    assert "blend:caruana" in result.output and "blend:lgbm" in result.output
    assert "blend:weighted" not in result.output and "needs weights" not in result.output
    with_weights = invoke(store, "--method", "all", "--weights", "1,1,1,1", "-p", "lgbm.n_estimators=5")
    assert with_weights.exit_code == 0 and "blend:weighted" in with_weights.output, with_weights.output


def _set_status(store, model, status):
    path = store / "syn" / "models" / model / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "status": status}))


def test_unfinished_models_are_dropped_with_the_hint_their_state_needs(store):
    _set_status(store, "weak", "training")
    (store / "syn" / "models" / "weak" / "seed1" / "fold3" / "fold.json").unlink()  # stopped in its last run
    _set_status(store, "fair", "training")
    _set_status(store, "good", "queued")  # no kit writes it: a hand-edited or foreign model.json
    with exclusive(Store(store).lock_path("syn", "fair"), "model 'fair'"):  # another kit process trains it
        result = invoke(store, "--out", store.parent / "s.csv")
        named = invoke(store, "-m", "fair", "-m", "best", "--out", store.parent / "t.csv")
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert ("dropped weak: is not finished: its training stopped after 7 of 8 (seed, fold) runs; "
            "run kit train on its recipe again to finish it") in output
    assert "dropped fair: is being trained now (by kit pid" in output and "wait for that run to finish" in output
    assert "kit train" not in output.split("dropped fair:")[1].split("dropped")[0]  # a second kit train is refused
    assert "dropped good: has status 'queued'" in output and "retrain it with kit train --force" in output
    dropped = json.loads((store.parent / "s.report" / "report.json").read_text())["dropped"]
    assert set(dropped) == {"weak", "fair", "good"} and "being trained now" in dropped["fair"]
    assert named.exit_code == 2 and "model 'fair' is being trained now" in named.output, named.output


def test_the_competition_is_inferred_from_the_models_or_named_by_its_file(store):
    y = np.arange(40) % 2
    write_store(store, "other", y, np.arange(40) % 4, {"alpha": [(np.eye(2)[y] * 0.8 + 0.1, np.full((50, 2), 0.5))]})
    result = invoke(store, "-m", "b*", "--out", store.parent / "b.csv")  # best: only in syn
    assert result.exit_code == 0 and "syn: out-of-fold scores of 1 member and" in result.output, result.output
    result = invoke(store, "--out", store.parent / "x.csv")
    assert result.exit_code == 2 and "several competitions (other, syn); choose one with --competition" in result.output
    result = invoke(store, "-m", "nothing*")
    assert result.exit_code == 2 and "--models nothing* fit none of them" in " ".join(result.output.split())
    (store.parent / "other.yaml").write_text("name: other\nlayout: npz\nroot: data/other\n")
    result = invoke(store, "-c", store.parent / "other.yaml", "--out", store.parent / "o.csv")
    assert result.exit_code == 0 and "other: out-of-fold scores of 1 member and" in result.output, result.output
    assert (store.parent / "o.csv").read_text().startswith("id,label\nt0,")


def test_blend_folds_blends_members_trained_on_some_folds_only(trained_store, workdir):
    """An expensive member trained on fold 0 only (kit train --folds 0) blends with the others on that
    fold's held-out rows; without --folds it is left out, as any unfinished model."""
    from tests.conftest import write_recipe

    recipe = write_recipe(workdir / "recipes", "tiny_partial", model={"arch": "resnet_small", "params": {"widths": [8]}})
    result = runner.invoke(app, ["train", str(recipe), "--folds", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["blend", "--out", "all.csv"])
    assert result.exit_code == 0 and "dropped tiny_partial" in result.output, result.output
    result = runner.invoke(app, ["blend", "--folds", "0", "--method", "all", "--out", "fold0.csv"])
    assert result.exit_code == 0, result.output
    report = json.loads((workdir / "fold0.report" / "report.json").read_text())
    assert set(report["members"]) == {"tiny_vgg", "tiny_resnet", "tiny_partial"}
    assert report["folds"] == [0] and report["partial"] is True
    # scored on fold 0's held-out rows alone, by blenders that need no second fold to be scored honestly
    store = Store(workdir / "store")
    folds = store.folds(store.manifest("digits", "tiny_vgg"))
    assert not any(report["nested_cv"].values())
    member = store.load_member("digits", "tiny_partial", folds=[0])
    held = folds.fold == 0
    assert np.isfinite(member.oof[held]).all() and np.isnan(member.oof[~held]).all()
    for args, fragment in [(["--folds", "0", "--method", "caruana"], "--folds: blender 'caruana' learns from the OOF"),
                           (["--folds", "7"], "--folds: 7 is not a fold of"),
                           (["--folds", "1", "-m", "tiny_partial"], "has not finished fold 1 (seed 0)")]:
        result = runner.invoke(app, ["blend", *args, "--out", "bad.csv"])
        assert result.exit_code == 2 and fragment in result.output, (args, result.output)
        assert not (workdir / "bad.csv").exists()
