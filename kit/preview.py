"""`kit augment-preview`: a PNG grid of training images through a recipe's augmentation pipeline.

One row per image: the image as cached, then a few independent draws of the pipeline, each
enlarged (nearest neighbour, so small images stay sharp) to a cell of at least 96 px. This is what
the network sees before the batch is normalised and resized; mixup and CutMix, which mix whole
batches, are not shown.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import fileio
from .augment import augment_images, checked_pipeline
from .competition import load_competition
from .errors import RecipeError
from .paths import check_output, competition_inputs, store_dir
from .progress import SILENT, Reporter
from .recipe import Recipe

PAD = 4  # pixels between cells
LABEL = 14  # the text band under each cell
MIN_CELL, MAX_CELL = 96, 256


def cell_side(height: int, width: int) -> int:
    """The side of a grid cell for images of this size: small ones enlarged by a whole factor, big ones shrunk."""
    side = max(height, width)
    return side * max(1, -(-MIN_CELL // side)) if side < MIN_CELL else min(side, MAX_CELL)


def grid_size(rows: int, samples: int, cell: int) -> tuple[int, int]:
    """(width, height) of the grid: rows x (1 original + `samples` draws)."""
    return PAD + (samples + 1) * (cell + PAD), PAD + rows * (cell + LABEL + PAD)


def augment_preview(recipe: Recipe, out: Path, n: int = 8, samples: int = 4, seed: int = 0,
                    reporter: Reporter = SILENT) -> Path:
    """Write the grid for `n` training images (picked at random with `seed`) to `out`; returns `out`."""
    if n < 1 or samples < 1:
        raise RecipeError(f"--n and --samples: expected positive numbers, got {n} and {samples}")
    # never into the store, nor over (or among) the competition's files: a PNG in its image folders is a new image
    check_output(out, "--out", store=store_dir(), inputs=competition_inputs(recipe.competition_spec))
    data = load_competition(recipe.competition_spec, image_size=recipe.image_size, reporter=reporter)
    try:
        pipeline = checked_pipeline(recipe.augment.transforms, data.image_size, data.train_images)
    except RecipeError as exc:
        raise exc.at(recipe.source) from None
    if pipeline is None:
        raise RecipeError(f"{recipe.source}: augment.transforms: empty, so the network sees the images as cached; "
                          f"nothing to preview")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data.train_images), size=min(n, len(data.train_images)), replace=False))
    height, width = data.image_size
    cell = cell_side(height, width)
    canvas = Image.new("RGB", grid_size(len(rows), samples, cell), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        image = np.asarray(data.train_images[row])
        draws = augment_images(pipeline, np.repeat(image[None], samples, axis=0), seed * 1_000_003 + int(row))
        top = PAD + r * (cell + LABEL + PAD)
        for c, shown in enumerate([image, *draws]):
            left = PAD + c * (cell + PAD)
            canvas.paste(_cell_image(shown, cell), (left, top))
            label = f"{data.classes[data.train_labels[row]]}" if c == 0 else f"draw {c}"  # the class, then the draws
            draw.text((left, top + cell + 1), label[:cell // 6], fill="black")
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    fileio.write_bytes(out, buffer.getvalue())
    return Path(out)


def _cell_image(image: np.ndarray, cell: int) -> Image.Image:
    """The image scaled so that its longer side fills the cell, its proportions kept."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB")
    scale = cell / max(pil.size)
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR
    return pil.resize((round(pil.width * scale), round(pil.height * scale)), resample)
