"""The CLI through Typer's CliRunner: the commands a user types, their output and exit codes."""

import hashlib

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from kit.blend.synthetic import write_store
from kit.cli import app
from tests.blend_fixtures import store_of_accuracies
from tests.conftest import write_recipe

runner = CliRunner()
COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def said(result) -> str:
    """The output on one line: rich wraps long lines at the terminal's width."""
    return " ".join(result.output.split())


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output


def test_train_blend_score_end_to_end(workdir):
    a = write_recipe(workdir / "recipes", "cnn_a")
    b = write_recipe(workdir / "recipes", "cnn_b", model={"arch": "resnet_small", "params": {"widths": [8]}})
    result = invoke("train", a, b)
    assert result.exit_code == 0, result.output
    assert "cnn_a: CV accuracy" in result.output and "cnn_b: CV accuracy" in result.output
    result = invoke("models")
    assert result.exit_code == 0 and "cnn_a" in result.output and "complete" in result.output
    result = invoke("blend", "--method", "soft,lgbm", "--out", workdir / "submissions" / "s.csv")
    assert result.exit_code == 0, result.output
    assert "macro avg" in result.output and "submission:" in result.output
    assert (workdir / "submissions" / "s.csv").is_file()
    result = invoke("score", workdir / "submissions" / "s.csv")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output


def _tree_checksums(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("make_args, fragment", [
    (lambda w: ["train", write_recipe(w / "recipes", "r", modle={"arch": "x"})], "r.yaml: modle: unknown key; allowed keys here:"),
    (lambda w: ["train", write_recipe(w / "recipes", "r", model={"arch": "vgg_smll"})], "unknown architecture 'vgg_smll'"),
    (lambda w: ["train", w / "recipes" / "missing.yaml"], "missing.yaml: no such recipe file"),
    (lambda w: ["blend", "--models", "nope"], "no model 'nope' in competition 'digits'"),
    (lambda w: ["blend", "--method", "vote"], "unknown blender 'vote'"),
    (lambda w: ["score", (w / "bad.csv").write_text("id,label\n1,3\n") and w / "bad.csv"], "bad.csv: ids do not match"),
    (lambda w: ["models", "--competition", "cifar"], "no competition 'cifar'"),
])
def test_bad_input_is_one_red_line_exit_2_and_store_untouched(trained_store, workdir, make_args, fragment):
    before = _tree_checksums(trained_store)
    result = invoke(*make_args(workdir))
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert _tree_checksums(trained_store) == before


def test_validate_accepts_a_blend_and_names_a_broken_copy(trained_store, workdir):
    assert invoke("blend", "--out", workdir / "submissions" / "ok.csv").exit_code == 0
    result = invoke("validate", workdir / "submissions" / "ok.csv")
    assert result.exit_code == 0 and "valid:" in result.output and "360 rows" in result.output
    lines = (workdir / "submissions" / "ok.csv").read_text().splitlines()
    broken = workdir / "broken.csv"
    broken.write_text("\n".join(lines[:5] + [lines[5].split(",")[0] + ",nan"] + lines[6:]) + "\n")
    result = invoke("validate", broken)
    assert result.exit_code == 2 and "line 6: label 'nan' is not a class" in result.output
    result = invoke("validate", broken, "--competition", "digits")
    assert result.exit_code == 2 and "line 6" in result.output


def _competition_with_solution(workdir, name="syn", accuracies=None, solution=True):
    """A synthetic store competition whose models record (in recipe.yaml) a competition file with a solution."""
    store = store_of_accuracies(workdir / "store", accuracies or {"m1": 0.8}, n_rows=40)[0] if name == "syn" else None
    root = workdir / "data" / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "solution.csv").write_text("id,label\n" + "".join(f"t{i},{i % 4}\n" for i in range(50)))
    spec = {"name": name, "layout": "pixel_csv", "root": str(root), **({"solution": "solution.csv"} if solution else {})}
    (workdir / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    for model in (workdir / "store" / name / "models").iterdir():
        (model / "recipe.yaml").write_text(yaml.safe_dump({"name": model.name, "competition": spec}))
    return store


def _submission(workdir, right=25, header="id,label"):
    path = workdir / "sub.csv"
    path.write_text(header + "\n" + "".join(f"t{i},{i % 4 if i < right else (i + 1) % 4}\n" for i in range(50)))
    return path


def test_score_uses_the_solution_the_competition_file_names_and_says_whose(workdir):
    _competition_with_solution(workdir)
    result = invoke("score", _submission(workdir))
    assert result.exit_code == 0, result.output
    assert "competition 'syn'" in said(result) and "accuracy 0.5000" in said(result)
    result = invoke("score", _submission(workdir, header="image,label"))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert ("first column 'image', expected the id column 'id' of the solution of competition 'syn' "
            f"({workdir / 'data' / 'syn' / 'solution.csv'})") in said(result)
    (workdir / "bare.yaml").write_text(yaml.safe_dump({"name": "bare", "layout": "pixel_csv", "root": "data/bare"}))
    result = invoke("score", _submission(workdir), "-c", workdir / "bare.yaml")
    assert result.exit_code == 2 and "competition 'bare' (data/bare): no solution: field" in said(result)


def test_score_and_validate_find_the_competition_by_the_submissions_columns(workdir):
    store = _competition_with_solution(workdir)
    write_store(workdir / "store", "other", np.arange(8) % 2, np.arange(8) % 2,
                {"o1": [(np.full((8, 2), 0.5), np.full((50, 2), 0.5))]})
    (store.sample_submission("other")).write_text("ImageId,Label\n" + "".join(f"t{i},0\n" for i in range(50)))
    _competition_with_solution(workdir, "other")
    result = invoke("score", _submission(workdir, right=50))
    assert result.exit_code == 0 and "competition 'syn'" in said(result) and "accuracy 1.0000" in said(result)
    result = invoke("validate", _submission(workdir, header="ImageId,Label"))
    assert result.exit_code == 2 and "label '2' is not a class" in said(result)  # checked as 'other''s: classes 0, 1
    (workdir / "sub.csv").write_text("ImageId,Label\n" + "".join(f"t{i},{i % 2}\n" for i in range(50)))
    result = invoke("validate", workdir / "sub.csv")
    assert result.exit_code == 0 and "competition 'other'" in said(result), result.output
    (workdir / "sub.csv").write_text("Id,Label\nt0,0\n")
    result = invoke("validate", workdir / "sub.csv")
    assert result.exit_code == 2 and "the submission's columns Id,Label fit none of them" in said(result)
    result = invoke("validate", _submission(workdir), "-c", workdir / "syn.yaml")  # a competition file names it
    assert result.exit_code == 0 and "competition 'syn'" in said(result), result.output
