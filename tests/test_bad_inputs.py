"""The bad-input corpus (tests/bad_inputs/): every malformed input, run through the CLI, gives one
clear line naming the file and the field, exit code 2, no traceback, and leaves the store as it was.

    recipes/*.yaml          `kit train FILE`; the first line says `# expect: <fragment>`
    competitions/<case>/    a competition (competition.yaml, CSVs) and the recipe.yaml that uses it,
                            copied to ./case before `kit train case/recipe.yaml`
    submissions/*.csv       `kit validate FILE` against the digits store; expect.yaml holds the fragments
    store damage            below: a file of a finished model deleted, truncated or edited, then `kit blend`
                            (and `kit models` for model.json's); no submission is written
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from kit.cli import app

CORPUS = Path(__file__).parent / "bad_inputs"
runner = CliRunner()


def checksums(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def expect_line(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path}: the first line must be '# expect: <fragment>'"
    return first.removeprefix("# expect: ")


def run_fails_cleanly(store: Path, args: list, fragment: str) -> str:
    before = checksums(store)
    result = runner.invoke(app, [str(a) for a in args])
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert "Traceback" not in output and not isinstance(result.exception, Exception) or result.exit_code == 2
    assert len(output.splitlines()) == 1, output
    assert output.startswith("error: ") and fragment in output, output
    assert checksums(store) == before, "the command changed the store"
    return output


RECIPES = sorted((CORPUS / "recipes").glob("*.yaml"))
COMPETITIONS = sorted(p for p in (CORPUS / "competitions").iterdir() if p.is_dir())
SUBMISSIONS = yaml.safe_load((CORPUS / "submissions" / "expect.yaml").read_text())


def test_the_corpus_has_at_least_30_cases():
    assert len(RECIPES) + len(COMPETITIONS) + len(SUBMISSIONS) + len(STORE_DAMAGE) >= 30


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_bad_recipe(trained_store, recipe):
    output = run_fails_cleanly(trained_store, ["train", recipe], expect_line(recipe))
    assert str(recipe) in output  # names the file


@pytest.mark.parametrize("case", COMPETITIONS, ids=lambda p: p.name)
def test_bad_competition(trained_store, workdir, case):
    shutil.copytree(case, workdir / "case")
    output = run_fails_cleanly(trained_store, ["train", "case/recipe.yaml"], expect_line(case / "recipe.yaml"))
    assert "case/" in output  # names the file (the competition's or the recipe's)
    assert not (trained_store / case.name.replace("_", "-")).exists() or "folds" in output


@pytest.mark.parametrize("name", sorted(SUBMISSIONS))
def test_bad_submission(trained_store, name):
    path = CORPUS / "submissions" / name
    output = run_fails_cleanly(trained_store, ["validate", path], SUBMISSIONS[name])
    assert str(path) in output


def _model(store):
    return store / "digits" / "models" / "tiny_vgg"


def _fold(store, k=0):
    return _model(store) / "seed0" / f"fold{k}"


def _as_written(path: Path) -> None:
    """Record a fold file's new size and sha256 in its fold.json, as if kit had written it so (a run
    that diverged writes NaN predictions whole): then only reading the file can tell."""
    done = path.parent / "fold.json"
    record = json.loads(done.read_text())
    record["files"][path.name] = {"bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    done.write_text(json.dumps(record))


def _edit_npz(path: Path, **edits) -> None:
    """Rewrite a fold's oof.npz or test.npz with `edits` (name -> function of the array), as kit would have."""
    with np.load(path) as data:
        arrays = dict(data)
    arrays.update({k: edit(arrays[k]) for k, edit in edits.items()})
    np.savez(path.with_suffix(""), **arrays)  # np.savez adds the .npz
    _as_written(path)


def _reverse_columns(store) -> None:
    """Probabilities still summing to 1, each of another class: only fold.json's sha256 can tell."""
    path = _fold(store) / "oof.npz"
    with np.load(path) as data:
        np.savez(path.with_suffix(""), ids=data["ids"], probs=data["probs"][:, ::-1])


def _nan_rows(probs):
    probs = probs.copy()
    probs[3::7] = np.nan
    return probs


def _edit_manifest(store, **changes) -> None:
    path = _model(store) / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _edit_folds(store) -> None:
    path = store / "digits" / "folds" / "k2-seed0.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "fold"] = "1" if frame.loc[0, "fold"] == "0" else "0"
    frame.to_csv(path, index=False)


def _swap(a: Path, b: Path) -> None:
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)
    _as_written(a)
    _as_written(b)


# the error each case names is in the file where the problem is; the wrong-result cases (predictions
# that used to be blended) also check that no submission was written
STORE_DAMAGE = {
    "deleted_oof": (lambda s: (_fold(s, 1) / "oof.npz").unlink(), "fold1/oof.npz: missing"),
    "truncated_oof": (lambda s: _truncate(_fold(s) / "oof.npz"), "fold0/oof.npz: "),
    "truncated_test": (lambda s: _truncate(_fold(s, 1) / "test.npz"), "fold1/test.npz: "),
    "truncated_manifest": (lambda s: _truncate(_model(s) / "model.json"), "tiny_vgg/model.json: damaged or unreadable"),
    "deleted_folds": (lambda s: (s / "digits" / "folds" / "k2-seed0.csv").unlink(), "k2-seed0.csv: missing"),
    "truncated_folds": (lambda s: _truncate(s / "digits" / "folds" / "k2-seed0.csv", keep=30), "k2-seed0.csv: "),
    "deleted_sample_submission": (lambda s: (s / "digits" / "sample_submission.csv").unlink(),
                                  "sample_submission.csv: no such sample submission file"),
    # probabilities that are not probabilities (issue 13)
    "nan_rows_in_test": (lambda s: _edit_npz(_fold(s, 1) / "test.npz", probs=_nan_rows),
                         "fold1/test.npz: row 3 (id '"),
    "nan_rows_in_oof": (lambda s: _edit_npz(_fold(s) / "oof.npz", probs=_nan_rows), "fold0/oof.npz: row 3 (id '"),
    "negative_probabilities": (lambda s: _edit_npz(_fold(s) / "test.npz", probs=lambda p: p - 0.2),
                               "fold0/test.npz: row 0 (id '"),
    "rows_summing_to_3": (lambda s: _edit_npz(_fold(s) / "oof.npz", probs=lambda p: p * 3),
                          "probabilities summing to 3, not 1"),
    "wrong_number_of_columns": (lambda s: _edit_npz(_fold(s) / "oof.npz", probs=lambda p: p[:, :4] / p[:, :4].sum(1, keepdims=True)),
                                "fold0/oof.npz: probs: 4 columns, but its model has 10 classes"),
    "integer_probabilities": (lambda s: _edit_npz(_fold(s) / "test.npz", probs=lambda p: (p == p.max(1, keepdims=True)).astype(int)),
                              "fold0/test.npz: probs: expected a table of floating-point probabilities"),
    # ids that do not say which image a row is
    "oof_ids_repeated": (lambda s: _edit_npz(_fold(s) / "oof.npz", ids=lambda ids: np.r_[ids[:1], ids[:-1]]),
                         "fold0/oof.npz: id '"),
    "oof_ids_as_numbers": (lambda s: _edit_npz(_fold(s) / "oof.npz", ids=lambda ids: ids.astype(float)),
                           "fold0/oof.npz: ids: expected one text id per row, got an array of float64"),
    "oof_of_the_other_fold": (lambda s: _swap(_fold(s) / "oof.npz", _fold(s, 1) / "oof.npz"), "not fold 0"),
    "oof_row_missing": (lambda s: _edit_npz(_fold(s) / "oof.npz", ids=lambda ids: ids[1:], probs=lambda p: p[1:]),
                        "rows for fold 0's"),
    "test_ids_reordered": (lambda s: _edit_npz(_fold(s) / "test.npz", ids=lambda ids: ids[::-1]),
                           "fold0/test.npz: its test ids are not the ones 'tiny_vgg' recorded"),
    "test_ids_of_one_fold_reordered": (lambda s: _edit_npz(_fold(s, 1) / "test.npz", ids=lambda ids: ids[::-1]),
                                       "fold1/test.npz: its test ids differ from fold 0's"),
    # a done fold whose files are not the ones it finished with
    "truncated_weights": (lambda s: _truncate(_fold(s, 1) / "weights.pt"), "fold1/weights.pt: "),
    "edited_oof": (_reverse_columns, "fold0/oof.npz: its content changed since the fold finished"),
    "deleted_history": (lambda s: (_fold(s) / "history.csv").unlink(),
                        "fold0/history.csv: missing, though fold.json marks the fold done"),
    "truncated_fold_json": (lambda s: _truncate(_fold(s) / "fold.json"), "fold0/fold.json: damaged or unreadable"),
    "edited_folds": (_edit_folds, "k2-seed0.csv: the folds changed since 'tiny_vgg' was trained"),
    # a model.json that does not describe its folder
    "model_of_another_competition": (lambda s: _edit_manifest(s, competition="cifar10"),
                                     "model.json: a model of competition 'cifar10', not of 'digits'"),
    "model_folder_renamed": (lambda s: _edit_manifest(s, name="vgg_old"), "model.json: name 'vgg_old', but its folder is"),
    "manifest_n_folds_wrong": (lambda s: _edit_manifest(s, n_folds=5), "model.json: n_folds 5, but its folds file"),
    "manifest_classes_of_another_competition": (lambda s: _edit_manifest(s, classes=list("abcdefghij")),
                                                "model.json: classes ['a', "),
    "manifest_cv_nan": (lambda s: _edit_manifest(s, cv={"accuracy": float("nan")}),
                        "model.json: cv.accuracy: input should be a finite number"),
    "manifest_cv_a_string": (lambda s: _edit_manifest(s, cv="0.9"), "model.json: cv: input should be a valid dictionary"),
    "manifest_seeds_empty": (lambda s: _edit_manifest(s, seeds=[]), "model.json: seeds: list should have at least 1"),
    "manifest_seeds_a_string": (lambda s: _edit_manifest(s, seeds="0"), "model.json: seeds: input should be a valid list"),
    "manifest_seed_a_boolean": (lambda s: _edit_manifest(s, seeds=[True]), "model.json: seeds.0: "),
    "manifest_classes_a_number": (lambda s: _edit_manifest(s, classes=10), "model.json: classes: input should be a valid list"),
    "manifest_a_list": (lambda s: (_model(s) / "model.json").write_text("[1, 2]"), "model.json: (top level): "),
}
# the cases that read model.json alone, which kit models reads too
MANIFEST_DAMAGE = sorted(c for c in STORE_DAMAGE if c.startswith("manifest_") and c != "manifest_n_folds_wrong"
                         and c != "manifest_classes_of_another_competition") + ["truncated_manifest",
                                                                                "model_of_another_competition",
                                                                                "model_folder_renamed"]


def _truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep is not None else len(data) // 2])


@pytest.mark.parametrize("case", sorted(STORE_DAMAGE))
def test_damaged_store(trained_store, workdir, case):
    damage, fragment = STORE_DAMAGE[case]
    damage(trained_store)
    run_fails_cleanly(trained_store, ["blend", "--models", "tiny_vgg"], fragment)
    assert not (workdir / "submissions").exists(), "a submission was written"


@pytest.mark.parametrize("case", MANIFEST_DAMAGE)
def test_damaged_manifest_is_refused_by_kit_models(trained_store, case):
    damage, fragment = STORE_DAMAGE[case]
    damage(trained_store)
    run_fails_cleanly(trained_store, ["models"], fragment)
