"""The CLI through Typer's CliRunner: the commands a user types, their output and exit codes."""

import hashlib

import pytest
from typer.testing import CliRunner

from kit.cli import app
from tests.conftest import write_recipe

runner = CliRunner()
COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


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
