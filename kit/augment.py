"""Train-time augmentation: albumentations pipelines from a recipe's `augment.transforms`.

A recipe names albumentations' own transforms with their own arguments, one per list entry:

    augment:
      transforms:
        - HorizontalFlip: {p: 0.5}
        - Affine: {rotate: [-15, 15], scale: [0.9, 1.1], translate_percent: 0.1, p: 0.7}
        - CoarseDropout: {num_holes_range: [1, 2], hole_height_range: [0.1, 0.25], hole_width_range: [0.1, 0.25]}

An entry may also be a bare name (its default arguments), a composition holding its own list
(`OneOf: {transforms: [...], p: 0.5}`), or a preset name (light, medium, heavy) that stands for
its list. Names and arguments are checked against albumentations itself when the recipe loads,
and the presets are expanded there, so the stored recipe (and its hash) holds the transforms that
actually ran.

Pipelines run on each uint8 H x W x C image at its cached size, before the batch is normalised and
resized to the model's size (kit/train/batches.py): augmenting a 32 px image costs the same
whether the model sees 32 or 224 px. They must give the image back with its shape and dtype;
`RandomResizedCrop` and `RandomSizedCrop` take the image's own size when `size` is left out.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

import numpy as np

from .errors import RecipeError, did_you_mean, first_line

# Preset lists for the common cases, as a recipe would write them. They keep an image's shape and work
# on grayscale and colour images alike. `light` is the classic flip-and-shift; `medium` adds scale,
# rotation and brightness/contrast; `heavy` adds shear and cut-out holes. Flips suit photographs,
# not text or digits: list your own transforms for those.
PRESETS: dict[str, list[dict]] = {
    "light": [
        {"HorizontalFlip": {"p": 0.5}},
        {"Affine": {"translate_percent": [-0.0625, 0.0625], "p": 0.5}},
    ],
    "medium": [
        {"HorizontalFlip": {"p": 0.5}},
        {"Affine": {"scale": [0.9, 1.1], "translate_percent": [-0.1, 0.1], "rotate": [-15, 15], "p": 0.7}},
        {"RandomBrightnessContrast": {"brightness_limit": 0.2, "contrast_limit": 0.2, "p": 0.5}},
    ],
    "heavy": [
        {"HorizontalFlip": {"p": 0.5}},
        {"Affine": {"scale": [0.8, 1.2], "translate_percent": [-0.15, 0.15], "rotate": [-25, 25],
                    "shear": [-10, 10], "p": 0.8}},
        {"RandomBrightnessContrast": {"brightness_limit": 0.3, "contrast_limit": 0.3, "p": 0.7}},
        {"CoarseDropout": {"num_holes_range": [1, 3], "hole_height_range": [0.1, 0.25],
                           "hole_width_range": [0.1, 0.25], "p": 0.5}},
    ],
}

# transforms a recipe cannot use here, and why
REFUSED = {
    "Normalize": "kit standardises every batch after augmentation (kit/train/batches.py); leave it out",
    "ToFloat": "pipelines work on uint8 images; kit scales them after augmentation",
    "FromFloat": "pipelines work on uint8 images",
    "ToTensorV2": "kit makes the tensors itself",
    "Lambda": "a recipe cannot hold a Python function",
    "Compose": "the transforms list is the Compose; nest with Sequential, OneOf or SomeOf",
    "ReplayCompose": "the transforms list is the Compose; nest with Sequential, OneOf or SomeOf",
    "Mosaic": "it needs other images passed as metadata, which kit does not provide",
}

# the size a transform is given when it needs one and the recipe leaves it out; only while checking a
# recipe (the training images' own size is used when a pipeline is built for training)
CHECK_SIZE = (32, 32)


def _albumentations():
    import albumentations  # imported on first use: it pulls in OpenCV

    return albumentations


@functools.lru_cache(maxsize=1)
def transform_names() -> list[str]:
    """Every albumentations transform and composition a recipe can name."""
    A = _albumentations()
    names = []
    for name in dir(A):
        cls = getattr(A, name)
        if (isinstance(cls, type) and issubclass(cls, (A.BasicTransform, A.BaseCompose))
                and not issubclass(cls, A.Transform3D) and not inspect.isabstract(cls)
                and name not in REFUSED and not name.startswith("_")
                and name not in ("BasicTransform", "BaseCompose", "DualTransform", "ImageOnlyTransform")):
            names.append(name)
    return sorted(names)


def resolve_transforms(entries: Any, where: str = "augment.transforms") -> list[dict]:
    """A recipe's transforms as [{Name: {arguments}}, ...]: presets expanded, every name and argument
    checked against albumentations. RecipeError names the entry (`where`.index.Name.argument)."""
    if isinstance(entries, str):
        entries = [entries]
    resolved = []
    for i, entry in enumerate(entries or []):
        at = f"{where}.{i}"
        if isinstance(entry, str) and entry in PRESETS:
            resolved += [dict(e) for e in PRESETS[entry]]
            continue
        name, args = _split_entry(entry, at)
        if name in REFUSED:
            raise RecipeError(f"{at}: {name}: not usable in a recipe's augmentation: {REFUSED[name]}")
        known = transform_names()
        if name not in known:
            raise RecipeError(f"{at}: '{name}' is not an albumentations transform nor a preset "
                              f"({', '.join(PRESETS)}){did_you_mean(name, known + list(PRESETS))}")
        if "transforms" in args:  # a composition: its own list, checked the same way
            args = dict(args, transforms=resolve_transforms(args["transforms"], f"{at}.{name}.transforms"))
        resolved.append({name: args})
        build_transform({name: args}, CHECK_SIZE, at)  # values are checked by albumentations itself
    return resolved


def _split_entry(entry: Any, at: str) -> tuple[str, dict]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and len(entry) == 1:
        name, args = next(iter(entry.items()))
        if args is None:
            args = {}
        if isinstance(name, str) and isinstance(args, dict):
            return name, dict(args)
    raise RecipeError(f"{at}: expected one transform as {{Name: {{argument: value}}}}, a bare Name or a preset "
                      f"({', '.join(PRESETS)}); got {entry!r}")


def build_transform(entry, image_hw: tuple[int, int], at: str):
    """One albumentations transform (or composition) from its resolved entry; RecipeError on a bad argument."""
    name, args = _split_entry(entry, at)
    at = f"{at}.{name}"
    cls = getattr(_albumentations(), name)
    params = {p.name: p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    for arg in args:
        if arg not in params:
            raise RecipeError(f"{at}.{arg}: not an argument of albumentations' {name}{did_you_mean(arg, params)}; "
                              f"its arguments: {', '.join(params)}")
    args = dict(args)
    if "transforms" in args:
        args["transforms"] = [build_transform(e, image_hw, f"{at}.transforms.{i}") for i, e in enumerate(args["transforms"])]
    if "size" in params and params["size"].default is inspect.Parameter.empty and "size" not in args:
        args["size"] = tuple(image_hw)  # crops come back at the image's own size, so the batch still stacks
    missing = [p for p, spec in params.items() if spec.default is inspect.Parameter.empty and p not in args]
    if missing:
        raise RecipeError(f"{at}: albumentations' {name} needs {', '.join(missing)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation chatter; the values themselves are checked below
            return cls(**args)
    except (ValueError, TypeError) as exc:
        field, message = _albumentations_error(exc)
        value = f" (got {args[field]!r})" if field in args else ""
        raise RecipeError(f"{at}{'.' + field if field else ''}: {message}{value}") from None


def _albumentations_error(exc: Exception) -> tuple[str, str]:
    """(argument, message) from albumentations' pydantic error text, which spans several lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) >= 3 and "validation error" in lines[0]:
        field = lines[1].split(".")[0]  # 'rotate.tuple[float, float]': the union branch tried is noise
        message = lines[2].split(" [type=")[0].removeprefix("Value error, ")
        return field, message[:1].lower() + message[1:]
    return "", first_line(exc)


def build_pipeline(transforms: list[dict], image_hw: tuple[int, int]):
    """The albumentations Compose of resolved entries, for images of `image_hw` (height, width); None when empty."""
    if not transforms:
        return None
    built = [build_transform(e, image_hw, f"augment.transforms.{i}") for i, e in enumerate(transforms)]
    return _albumentations().Compose(built)


def checked_pipeline(transforms: list[dict], image_hw: tuple[int, int], images: np.ndarray):
    """build_pipeline, then tried on a few of `images` (check_pipeline): what training and the preview use."""
    pipeline = build_pipeline(transforms, image_hw)
    if pipeline is not None:
        check_pipeline(pipeline, images, "augment.transforms")
    return pipeline


def seed_pipeline(pipeline, seed: int) -> None:
    """Give every transform in the tree its own random stream derived from `seed`.

    albumentations' own Compose(seed=...) hands the same seed to every transform, so two flips with
    p=0.5 always flip together; here each one draws independently, and the same seed replays the
    same augmentations (a resumed run sees what an uninterrupted one saw)."""
    A = _albumentations()
    nodes, stack = [], [pipeline]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, A.BaseCompose):
            stack.extend(reversed(node.transforms))
    # pre-order: a composition seeds its children with its own seed; they are re-seeded after it
    for node, child in zip(nodes, np.random.SeedSequence(seed).spawn(len(nodes))):
        node.set_random_seed(int(child.generate_state(1)[0]))


def augment_images(pipeline, images: np.ndarray, seed: int) -> np.ndarray:
    """`images` (N x H x W x C uint8) through `pipeline`, reproducibly for a given seed."""
    seed_pipeline(pipeline, seed)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = _same_shape(image, pipeline(image=image)["image"], "augment.transforms")
    return out


def _same_shape(image: np.ndarray, result, where: str) -> np.ndarray:
    """`result` as uint8 of `image`'s shape, or RecipeError: the batch must stack, and the model expects that size."""
    if not isinstance(result, np.ndarray) or result.dtype != np.uint8:
        raise RecipeError(f"{where}: the pipeline must give uint8 images back, got "
                          f"{getattr(result, 'dtype', type(result).__name__)}")
    if result.shape != image.shape and result.size == image.size and result.shape[:2] == image.shape[:2]:
        result = result.reshape(image.shape)  # a few transforms drop a single channel's axis
    if result.shape != image.shape:
        raise RecipeError(f"{where}: the pipeline turns {_shape(image)} images into {_shape(result)}; each image "
                          f"must keep its size (crops: RandomResizedCrop takes the image's size when size is "
                          f"left out; or end with Resize to {image.shape[0]}x{image.shape[1]})")
    return result


def check_pipeline(pipeline, images: np.ndarray, where: str) -> None:
    """Run `pipeline` on a few real images: it must give each back as uint8 of the same shape.

    Caught before training starts, with the transform list named, rather than as a stacking error
    in the middle of an epoch."""
    for image in images[:4]:
        image = np.ascontiguousarray(image)
        try:
            result = pipeline(image=image)["image"]
        except Exception as exc:  # any transform may fail in its own way on these images
            raise RecipeError(f"{where}: the pipeline fails on a {_shape(image)} training image: "
                              f"{type(exc).__name__}: {first_line(exc)}") from None
        _same_shape(image, result, where)


def _shape(image: np.ndarray) -> str:
    channels = image.shape[2] if image.ndim == 3 else 1
    return f"{image.shape[0]}x{image.shape[1]}x{channels}"
