"""The bad-input corpus (tests/bad_inputs/): every malformed input, run through the CLI, gives one
clear line naming the file and the field, exit code 2, no traceback, and leaves the store as it was.

    recipes/*.yaml          `kit train FILE`; the first line says `# expect: <fragment>`
    competitions/<case>/    a competition (competition.yaml, CSVs) and the recipe.yaml that uses it,
                            copied to ./case before `kit train case/recipe.yaml`
    submissions/*.csv       `kit validate FILE` against the digits store; expect.yaml holds the fragments
    store damage            below: a file of a finished model deleted or truncated, then `kit blend`
"""

import hashlib
import shutil
from pathlib import Path

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


STORE_DAMAGE = {
    "deleted_oof": (lambda s: (_model(s) / "seed0" / "fold1" / "oof.npz").unlink(), "fold1/oof.npz: missing"),
    "truncated_oof": (lambda s: _truncate(_model(s) / "seed0" / "fold0" / "oof.npz"), "fold0/oof.npz: damaged"),
    "truncated_test": (lambda s: _truncate(_model(s) / "seed0" / "fold1" / "test.npz"), "fold1/test.npz: damaged"),
    "truncated_manifest": (lambda s: _truncate(_model(s) / "model.json"), "tiny_vgg/model.json: damaged or unreadable"),
    "deleted_folds": (lambda s: (s / "digits" / "folds" / "k2-seed0.csv").unlink(), "k2-seed0.csv: missing"),
    "truncated_folds": (lambda s: _truncate(s / "digits" / "folds" / "k2-seed0.csv", keep=30), "k2-seed0.csv: "),
    "deleted_sample_submission": (lambda s: (s / "digits" / "sample_submission.csv").unlink(),
                                  "sample_submission.csv: no such sample submission file"),
}


def _truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep is not None else len(data) // 2])


@pytest.mark.parametrize("case", sorted(STORE_DAMAGE))
def test_damaged_store(trained_store, case):
    damage, fragment = STORE_DAMAGE[case]
    damage(trained_store)
    run_fails_cleanly(trained_store, ["blend", "--models", "tiny_vgg"], fragment)
