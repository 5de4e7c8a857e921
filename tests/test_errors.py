"""kit's exceptions: an error about a field is told once which file it is about."""

import pytest

from kit.errors import DataError, RecipeError


def test_at_prefixes_the_file_once_and_keeps_the_error_type():
    exc = DataError("cv.folds: 5 folds need at least 5 images of every class")
    assert exc.at("recipes/a.yaml") is exc and exc.where == "recipes/a.yaml"
    exc.at("recipes/b.yaml")  # a caller further up knows no better file
    assert str(exc) == "recipes/a.yaml: cv.folds: 5 folds need at least 5 images of every class"
    with pytest.raises(RecipeError, match=r"^x\.yaml: model\.arch: unknown$"):
        try:
            raise RecipeError("model.arch: unknown")
        except RecipeError as caught:
            raise caught.at("x.yaml") from None
