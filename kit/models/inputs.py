"""What a network needs to see: the side its inputs are resized to and the normalisation its weights expect.

Images are resized at batch time by kit/train/batches.py's Normalizer (bilinear upsampling, never
zero-padding: a backbone learns nothing from a black frame). Whether a size runs is found by
running the network on the meta device (shapes only, no arithmetic), so the check costs
milliseconds and covers every timm model without a table of minimum sizes.

With no `image_size` in the recipe:
  - a pretrained timm model gets its pretrained input size (224 for most ImageNet backbones): the
    scale its filters were trained at (give image_size to trade accuracy for speed);
  - anything else keeps the competition's own size, raised to the network's minimum if smaller.

Whatever the size, one batch's activations must fit in the machine's largest memory (its RAM or a
GPU's): a size that cannot (`image_size: 100000` is terabytes per batch) is refused with the largest
that could, before anything is allocated or written. The estimate, from the same meta-device run,
counts each layer's output once: a floor, as autograd keeps at least that much.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass

import torch

from ..errors import RecipeError
from ._registry import build_scratch, is_timm, timm_name

LARGEST_PROBED = 1024


@dataclass(frozen=True)
class InputSpec:
    size: int  # the side images are resized to
    mean: list[float] | None  # per-channel normalisation of pretrained weights; None: the training images' own
    std: list[float] | None
    reason: str  # where the size comes from, for the training log


def fits(name: str, params: dict, in_chans: int, size: int) -> bool:
    """Whether the network runs on size x size inputs."""
    return _fits(name, json.dumps(params, sort_keys=True), in_chans, size)


@functools.lru_cache(maxsize=256)
def _fits(name: str, params_json: str, in_chans: int, size: int) -> bool:
    params = json.loads(params_json)
    try:
        model = shape_model(name, params, in_chans, size)
    except RecipeError:
        if is_timm(name):
            raise  # timm models are built once for all sizes: a failure is about the parameters
        return False  # a scratch net may refuse to be built this small (airbench's 2x2 stem at 1 px)
    try:
        with torch.no_grad():
            model(torch.empty(2, in_chans, size, size, device="meta"))
    except Exception:  # a too-small map fails differently in every architecture (conv, pool, assert, reshape)
        return False
    return True


def shape_model(name: str, params: dict, in_chans: int, size: int, num_classes: int = 2):
    """The network on the meta device (shapes only, no memory): for checks that must not build the real thing."""
    from . import timm_models

    if is_timm(name):
        return timm_models.shape_model(timm_name(name), params, in_chans)
    with torch.device("meta"):  # scratch nets are built for their size
        return build_scratch(name, num_classes, in_chans, size, params).eval()


def min_input_size(name: str, params: dict, in_chans: int, failing: int) -> int | None:
    """The smallest side above `failing` (which does not run) that runs; None when nothing up to 1024 px does."""
    low, high = failing, max(2 * failing, 8)
    while not fits(name, params, in_chans, high):
        low, high = high, 2 * high
        if high > LARGEST_PROBED:
            return None
    while high - low > 1:  # low fails, high runs
        mid = (low + high) // 2
        low, high = (low, mid) if fits(name, params, in_chans, mid) else (mid, high)
    return high


def fixed_input_size(name: str, params: dict) -> int | None:
    """The one size a timm model takes when its config says the input size is fixed (ViTs without dynamic_img_size)."""
    from . import timm_models

    if not is_timm(name):
        return None
    cfg = timm_models.shape_model(timm_name(name), params, 3).pretrained_cfg
    if not cfg.get("fixed_input_size"):
        return None
    size = params.get("img_size", cfg.get("input_size", (None,))[-1])
    return size if isinstance(size, int) else None


def check_input_size(name: str, params: dict, in_chans: int, image_size: int) -> None:
    if fits(name, params, in_chans, image_size):
        return
    if not is_timm(name):
        shape_model(name, params, in_chans, max(image_size, 64))  # raises if the parameters are wrong at any size
    fixed = fixed_input_size(name, params)
    if fixed is not None:
        raise RecipeError(f"image_size: {name} takes exactly {fixed} px (a fixed input size), not {image_size}; set "
                          f"image_size: {fixed}, or build it for your size with model.params: {{img_size: {image_size}}}")
    minimum = min_input_size(name, params, in_chans, image_size)
    if minimum is None:
        raise RecipeError(f"image_size: {name} does not run on {image_size} px inputs, nor on any size up to "
                          f"{LARGEST_PROBED} px; check model.params")
    raise RecipeError(f"image_size: {image_size} px is too small for {name}: it needs at least {minimum} px; set "
                      f"image_size: {minimum} or more (images are upsampled, never padded)")


def activation_elements(name: str, params: dict, in_chans: int, size: int) -> tuple[int, int]:
    """(every layer's output summed, the largest layer's input plus output) in values, for one size x size
    image: what training keeps for the backward pass, and what predicting needs at its peak."""
    return _activation_elements(name, json.dumps(params, sort_keys=True), in_chans, size)


@functools.lru_cache(maxsize=64)
def _activation_elements(name: str, params_json: str, in_chans: int, size: int) -> tuple[int, int]:
    model = shape_model(name, json.loads(params_json), in_chans, size)
    total, peak = [in_chans * size * size], [0]

    def count(module, inputs, output):
        if list(module.children()) or not isinstance(output, torch.Tensor):
            return  # leaves only: a block's output is its last layer's
        out = output.numel() // 2
        total[0] += out
        peak[0] = max(peak[0], out + sum(i.numel() // 2 for i in inputs if isinstance(i, torch.Tensor)))

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.empty(2, in_chans, size, size, device="meta"))  # 2: batch norm refuses a batch of one
    finally:
        for hook in hooks:
            hook.remove()
    return total[0], peak[0]


def largest_memory() -> tuple[int, str] | None:
    """The bytes of the largest memory a model could train in here (RAM or one GPU), and which; None: unknown."""
    candidates = []
    try:
        candidates.append((os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "RAM"))
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        pass
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            candidates.append((torch.cuda.get_device_properties(i).total_memory, f"cuda:{i}"))
    return max(candidates) if candidates else None


def check_memory(name: str, params: dict, in_chans: int, size: int, train_batch: int, predict_batch: int,
                 field: str = "image_size") -> None:
    """Refuse a size whose one training (or predicting) batch cannot fit in any memory here, saying the largest that can."""
    memory = largest_memory()
    if memory is None:
        return
    limit, where = memory
    total, peak = activation_elements(name, params, in_chans, size)
    need = 4 * max(train_batch * total, predict_batch * peak)  # float32
    if need <= limit:
        return
    # activations grow with the image's area: scale the side by the square root of what is missing
    largest = max(1, math.floor(size * math.sqrt(limit / need)))
    raise RecipeError(f"{field}: {size} px would need at least {need / 2**30:,.0f} GiB for one batch of {name}'s "
                      f"activations (train.batch_size {train_batch}, predict.batch_size {predict_batch}), more "
                      f"than the {limit / 2**30:,.0f} GiB of this machine's largest memory ({where}); set "
                      f"image_size: {largest} or less, or smaller batch sizes")


def resolve_input(model_cfg, image_size: int | None, native_size: int, in_chans: int,
                  batch_sizes: tuple[int, int] | None = None) -> InputSpec:
    """The input size and normalisation for a recipe's model on a competition whose images are `native_size` px.

    `batch_sizes` (training, predicting): the size must also fit one batch in memory (check_memory)."""
    spec = _resolve_input(model_cfg, image_size, native_size, in_chans)
    if batch_sizes is not None:
        field = "image_size" if image_size is not None else f"image_size (none given: {spec.reason})"
        check_memory(model_cfg.arch, model_cfg.params, in_chans, spec.size, *batch_sizes, field=field)
    return spec


def _resolve_input(model_cfg, image_size: int | None, native_size: int, in_chans: int) -> InputSpec:
    from . import timm_models

    name, params = model_cfg.arch, model_cfg.params
    pretrained_timm = is_timm(name) and model_cfg.pretrained is not False
    mean = std = None
    if pretrained_timm:
        mean, std = timm_models.norm_stats(timm_name(name), in_chans)
    if image_size is not None:
        return InputSpec(image_size, mean, std, "the recipe's image_size")
    if pretrained_timm and timm_models.pretrained_input_size(timm_name(name)):
        size = timm_models.pretrained_input_size(timm_name(name))
        return InputSpec(size, mean, std, f"{name}'s pretrained input size (no image_size in the recipe)")
    if fits(name, params, in_chans, native_size):
        return InputSpec(native_size, mean, std, "the competition's image size")
    size = fixed_input_size(name, params) or min_input_size(name, params, in_chans, native_size)
    if size is None:
        check_input_size(name, params, in_chans, native_size)  # raises, saying why
    return InputSpec(size, mean, std, f"the smallest size {name} takes (the images are {native_size} px)")
