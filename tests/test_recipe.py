import pytest

from kit.errors import RecipeError
from kit.recipe import load_recipe, recipe_from_dict
from tests.conftest import TINY, write_recipe


def test_valid_recipe_defaults_its_name_to_the_file_stem(workdir):
    recipe = load_recipe(write_recipe(workdir / "recipes", "my_cnn"))
    assert recipe.name == "my_cnn"
    assert recipe.competition_spec.name == "digits"
    assert recipe.train.seeds == [0]
    assert recipe.train.optimizer.name == "adam"
    assert recipe.cv.folds == 2


def test_unknown_key_names_file_path_and_allowed_keys(workdir):
    path = write_recipe(workdir / "recipes", "typo", train__optimizr={"name": "sgd"})
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    message = str(err.value)
    assert message.startswith(f"{path}: train.optimizr: unknown key")
    assert "epochs" in message and "optimizer" in message and "label_smoothing" in message
    assert "\n" not in message


def test_bad_choice_lists_the_choices(workdir):
    path = write_recipe(workdir / "recipes", "bad", train__optimizer={"name": "adamx"})
    with pytest.raises(RecipeError, match=r"train\.optimizer\.name: 'adamx' is not one of sgd, adam, adamw, adamax, rmsprop"):
        load_recipe(path)


@pytest.mark.parametrize("changes, fragment", [
    ({"train__epochs": -1}, "train.epochs: input should be greater than 0"),
    ({"train__epochs": "ten"}, "train.epochs: input should be a valid integer"),
    ({"cv__folds": 1}, "cv.folds: input should be greater than or equal to 2"),
    ({"train__seed": [1, 1]}, "train.seed: value error, a list of seeds must be non-empty and without repeats"),
    ({"image_size": 0}, "image_size: input should be greater than 0"),
])
def test_wrong_values_are_named(workdir, changes, fragment):
    with pytest.raises(RecipeError, match=fragment.replace(".", r"\.")):
        load_recipe(write_recipe(workdir / "recipes", "bad", **changes))


def test_missing_required_field():
    data = {k: v for k, v in TINY.items() if k != "model"}
    with pytest.raises(RecipeError, match="x.yaml: model: required, but missing"):
        recipe_from_dict(data, source="x.yaml", default_name="x")


def test_missing_file_and_bad_yaml(workdir):
    with pytest.raises(RecipeError, match="nope.yaml: no such recipe file"):
        load_recipe(workdir / "nope.yaml")
    bad = workdir / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="bad.yaml: not valid YAML"):
        load_recipe(bad)
    bad.write_text("- a list\n")
    with pytest.raises(RecipeError, match="expected a mapping of recipe fields, got list"):
        load_recipe(bad)


def test_unknown_competition_suggests_the_builtin(workdir):
    with pytest.raises(RecipeError, match="'digit' is neither a built-in competition .*did you mean 'digits'"):
        load_recipe(write_recipe(workdir / "recipes", "x", competition="digit"))


def test_recipe_hash_ignores_name_but_not_training(workdir):
    a = load_recipe(write_recipe(workdir / "recipes", "a"))
    b = load_recipe(write_recipe(workdir / "recipes", "b"))
    c = load_recipe(write_recipe(workdir / "recipes", "c", train__epochs=2))
    assert a.hash == b.hash != c.hash


def test_recipe_hash_ignores_how_the_competition_root_is_spelled(workdir, monkeypatch):
    recipe = write_recipe(workdir / "recipes", "a")
    absolute = load_recipe(recipe)
    monkeypatch.setenv("KIT_DATA", "data")
    relative = load_recipe(recipe)
    assert str(relative.competition_spec.root) != str(absolute.competition_spec.root)
    assert relative.hash == absolute.hash
    assert relative.legacy_hash != absolute.legacy_hash  # the old form had the root in


def _train(*args):
    from typer.testing import CliRunner

    from kit.cli import app

    return CliRunner().invoke(app, ["train", *map(str, args)])


def test_the_same_recipe_and_data_by_another_path_is_not_a_changed_recipe(trained_store, workdir, monkeypatch):
    import json

    recipe = write_recipe(workdir / "recipes", "tiny_vgg")
    manifest = trained_store / "digits" / "models" / "tiny_vgg" / "model.json"
    before = manifest.read_bytes()
    monkeypatch.setenv("KIT_DATA", "data")  # relative, where the store was trained with an absolute path
    result = _train(recipe)
    assert result.exit_code == 0, result.output
    assert "changed" not in result.output
    # and from another folder, KIT_DATA spelled through it
    (workdir / "elsewhere").mkdir()
    monkeypatch.chdir(workdir / "elsewhere")
    monkeypatch.setenv("KIT_DATA", "../data")
    result = _train(recipe)
    assert result.exit_code == 0, result.output
    assert json.loads(manifest.read_bytes())["recipe_hash"] == json.loads(before)["recipe_hash"]


def test_a_model_stored_with_the_old_hash_form_is_still_the_same_recipe(trained_store, workdir):
    import json

    path = write_recipe(workdir / "recipes", "tiny_vgg")
    recipe = load_recipe(path)
    manifest_path = trained_store / "digits" / "models" / "tiny_vgg" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["recipe_hash"] = recipe.legacy_hash  # as kit 0.1.0 wrote it: the root in the hash
    manifest_path.write_text(json.dumps(manifest))
    before = manifest_path.read_bytes()
    result = _train(path)
    assert result.exit_code == 0, result.output
    assert "changed" not in result.output
    # a finished model's rerun rewrites nothing, so the old form stays until model.json is next written
    assert manifest_path.read_bytes() == before
    # a recipe that did change is still refused
    manifest["recipe_hash"] = "0" * 16
    manifest_path.write_text(json.dumps(manifest))
    result = _train(path)
    assert result.exit_code == 2 and "the recipe changed" in result.output


def test_extends_merges_mappings_replaces_the_rest_and_keeps_the_hash(workdir):
    base = write_recipe(workdir, "base", augment={"transforms": ["HorizontalFlip", "VerticalFlip"]})
    base.write_text(base.read_text() + "name: the_base\n")
    (workdir / "variants").mkdir()
    variant = workdir / "variants" / "wider.yaml"
    variant.write_text("extends: ../base.yaml\nmodel: {params: {widths: [16, 32]}}\ntrain: {epochs: 3}\n"
                       "augment: {transforms: [HorizontalFlip]}\n")
    recipe = load_recipe(variant)
    assert recipe.name == "wider"  # its own file's stem: the base's name: is not inherited
    assert recipe.model.arch == "vgg_small" and recipe.model.params["widths"] == [16, 32]
    assert recipe.model.params["convs_per_stage"] == 1 and recipe.train.batch_size == 64  # kept from the base
    assert recipe.train.epochs == 3 and recipe.augment.transforms == [{"HorizontalFlip": {}}]  # a list is replaced
    spelled_out = write_recipe(workdir, "spelled", model__params__widths=[16, 32], train__epochs=3,
                               augment={"transforms": ["HorizontalFlip"]})
    assert recipe.hash == load_recipe(spelled_out).hash  # a variant is the recipe it spells out
    assert len(load_recipe(base).augment.transforms) == 2


def test_extends_chains_and_a_null_removes_a_section(workdir):
    write_recipe(workdir, "a", teacher={"members": ["m"], "pseudo_labels": {"threshold": 0.9}})
    (workdir / "b.yaml").write_text("extends: a.yaml\ntrain: {epochs: 2}\n")
    (workdir / "c.yaml").write_text("extends: b.yaml\nteacher: null\n")
    recipe = load_recipe(workdir / "c.yaml")
    assert recipe.train.epochs == 2 and recipe.teacher is None


@pytest.mark.parametrize("text, fragment", [
    ("extends: missing.yaml\n", r"c\.yaml: extends: no such recipe file '.*missing\.yaml' \(the path is relative"),
    ("extends: [a.yaml]\n", r"c\.yaml: extends: expected the path of the recipe file"),
    ("extends: c.yaml\n", r"c\.yaml: extends: 'c\.yaml' leads back to c\.yaml"),
    ("extends: a.yaml\ntrain: {epoks: 2}\n", r"c\.yaml: train: unknown key 'epoks'|c\.yaml: train\.epoks"),
])
def test_extends_errors_name_the_file_and_field(workdir, text, fragment):
    write_recipe(workdir, "a")
    (workdir / "c.yaml").write_text(text)
    with pytest.raises(RecipeError, match=fragment):
        load_recipe(workdir / "c.yaml")
