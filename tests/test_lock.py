import pytest

from kit.errors import StoreError
from kit.lock import exclusive
from kit.recipe import load_recipe
from kit.store import Store
from kit.train import train_recipe
from tests.conftest import write_recipe


def test_second_trainer_of_the_same_model_is_refused_clearly(workdir):
    recipe = load_recipe(write_recipe(workdir / "recipes", "tiny"))
    lock = workdir / "store" / "digits" / "locks" / "tiny.lock"
    with exclusive(lock, "model 'tiny'"):  # another kit process, as far as flock is concerned
        with pytest.raises(StoreError, match=r"tiny.lock: model 'tiny' is in use by kit pid \d+ since .*--wait"):
            train_recipe(recipe, Store(workdir / "store"))
        # a different model of the same competition trains meanwhile
        other = load_recipe(write_recipe(workdir / "recipes", "other"))
        assert train_recipe(other, Store(workdir / "store")).folds_trained == 2
    assert not (workdir / "store" / "digits" / "models" / "tiny" / "seed0").exists()
    assert train_recipe(recipe, Store(workdir / "store")).folds_trained == 2  # released


def test_lock_is_released_when_the_block_fails(tmp_path):
    path = tmp_path / "x.lock"
    with pytest.raises(RuntimeError):
        with exclusive(path, "x"):
            raise RuntimeError
    with exclusive(path, "x"):
        pass
