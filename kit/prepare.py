"""`kit prepare`: read a competition, decode its images into the cache, say what it holds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .competition import CompetitionData, CompetitionSpec, load_competition, resolve_competition
from .errors import RecipeError
from .progress import SILENT, Reporter
from .recipe import load_recipe, read_recipe_file


@dataclass
class Prepared:
    spec: CompetitionSpec
    data: CompetitionData
    image_size: int | None  # the recipe's, when a recipe was given
    seconds: float

    def rows(self) -> list[list]:
        """One row per split: images, classes, size, channels."""
        d = self.data
        size = f"{d.image_size[0]}x{d.image_size[1]}"
        return [["train", len(d.train_ids), d.num_classes, size, d.channels],
                ["test", len(d.test_ids), "", size, d.channels]]

    @property
    def cache_meta(self) -> dict | None:
        return self.data.cache_meta


def prepare_competition(source: str, reporter: Reporter = SILENT, workers: int | None = None) -> Prepared:
    """`source`: a recipe (its competition, image files of mixed sizes at its image_size), a competition YAML
    file, or a built-in name."""
    image_size = None
    if _is_recipe(source):
        recipe = load_recipe(source)
        spec, image_size = recipe.competition_spec, recipe.image_size
    else:
        spec = resolve_competition(source, source="kit prepare")
    started = time.perf_counter()
    data = load_competition(spec, image_size=image_size, reporter=reporter, workers=workers)
    return Prepared(spec, data, image_size, time.perf_counter() - started)


def _is_recipe(source: str) -> bool:
    path = Path(source)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        data = read_recipe_file(path)
    except RecipeError:
        return False  # resolve_competition names the problem
    return isinstance(data, dict) and "layout" not in data and "competition" in data
