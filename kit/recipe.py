"""Recipes: one YAML file = one model family, trained k-fold.

    competition: digits
    model: {arch: vgg_small, params: {widths: [32, 64], dropout: 0.25}}
    image_size: 16
    cv: {folds: 5, seed: 42}
    train:
      epochs: 12
      batch_size: 64
      seed: 0
      optimizer: {name: adamw, lr: 0.003, weight_decay: 0.0005}
      scheduler: {name: onecycle}

A pretrained backbone, fine-tuned (docs/models.md lists every option):

    model: {arch: timm/resnet18, pretrained: weights/resnet18.safetensors, params: {drop_rate: 0.2}}
    train:
      epochs: 8
      finetune: {mode: gradual, epochs_per_stage: 1, layer_decay: 0.7}
      ema_decay: 0.999
      grad_clip: 1.0
      early_stopping: 3

Augmentation while training, and test-time augmentation (docs/augmentation.md):

    augment:
      transforms: [HorizontalFlip, {Affine: {rotate: [-10, 10], translate_percent: 0.1, p: 0.7}}]   # or: medium
      mixup: {p: 0.3, alpha: 0.2}
      cutmix: {p: 0.3, alpha: 1.0}
    tta: flip          # identity + horizontal flip, averaged, for the held-out fold and the test set alike

Learning from a blend of stored models, pseudo-labels and distillation by the fold rule (docs/teacher.md):

    teacher:
      members: [vgg_small, resnet_small]
      pseudo_labels: {threshold: 0.95}
      distill: {weight: 0.5, temperature: 2.0}

A variant of another recipe says only what differs (its path is relative to this file's folder; mappings
merge key by key, anything else, lists included, is replaced; the base's name is not inherited):

    extends: vgg_small.yaml
    teacher: {members: [vgg_small, resnet_small], pseudo_labels: {threshold: 0.95}}

Unknown keys are errors (they are almost always typos that would otherwise be ignored silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SerializeAsAny, ValidationError, field_validator, model_validator

from .competition import CompetitionSpec, resolve_competition
from .errors import RecipeError
from .fileio import stable_hash
from .schema import Strict, format_validation_error, read_yaml

OPTIMIZERS = ("sgd", "adam", "adamw", "adamax", "rmsprop")
SCHEDULERS = ("constant", "cosine", "onecycle", "step", "plateau", "triangle")
FINETUNE_MODES = ("full", "linear_probe", "freeze_then_unfreeze", "gradual", "embeddings")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# what NumPy and scikit-learn take as a seed
Seed = Annotated[int, Field(ge=0, lt=2**32)]


class ModelConfig(Strict):
    # a scratch net's name (kit zoo lists them) or timm/<name>
    arch: str
    # keyword arguments of the architecture's builder (widths, dropout, ...), or of timm.create_model
    params: dict[str, Any] = Field(default_factory=dict)
    # False, True (timm's own download), or a path to a .pth/.safetensors weights file; the classifier is rebuilt
    pretrained: bool | str = False


class OptimizerConfig(Strict):
    name: Literal[OPTIMIZERS] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd, rmsprop
    nesterov: bool = False  # sgd
    # sgd, airbench's decoupled form (docs/airbench.md): lr and weight_decay are per this many examples of a
    # summed loss, and lr is divided by momentum's step gain, so each can be tuned independently of the
    # batch size and of the others; None: torch's own lr and weight_decay
    lr_per: int | None = Field(None, gt=0)
    # the learning rate of normalisation layers' biases is this times the rest's (their weight decay is
    # scaled down to match, so they decay as much as every other weight); airbench uses 64
    norm_bias_lr_scale: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _decoupled_is_sgd(self):
        if self.lr_per is not None and self.name != "sgd":
            raise ValueError(f"lr_per (decoupled hyper-parameters) is for sgd, not {self.name}")
        return self


class SchedulerConfig(Strict):
    name: Literal[SCHEDULERS] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # cosine: final lr as a fraction of the peak
    step_size: int = Field(10, gt=0)  # step: epochs between decays
    gamma: float = Field(0.1, gt=0, le=1)  # step, plateau: decay factor
    patience: int = Field(2, ge=0)  # plateau: epochs without improvement before decaying
    # triangle (airbench): linear from start_lr_ratio up to the peak at peak_at (a fraction of all steps),
    # then linear down to min_lr_ratio at the last step
    start_lr_ratio: float = Field(0.2, ge=0, le=1)
    peak_at: float = Field(0.23, ge=0, lt=1)

    @model_validator(mode="after")
    def _triangle_warms_up_itself(self):
        if self.name == "triangle" and self.warmup_epochs:
            raise ValueError("triangle rises to its peak by itself: give peak_at (a fraction of the steps), "
                             "not warmup_epochs")
        return self


class LookaheadConfig(Strict):
    """airbench's Lookahead-EMA (kit/train/lookahead.py): every `every` steps from `start_epoch` on, the
    average moves toward the weights, rho = decay_base ** every * (step / total steps) ** decay_pow, and
    the weights are set to the average (and again at the end of each epoch)."""

    start_epoch: int = Field(3, ge=0)  # 0-based: the first epoch that averages
    every: int = Field(5, gt=0)
    decay_base: float = Field(0.95, gt=0, lt=1)
    decay_pow: float = Field(3.0, ge=0)


class HeadConfig(Strict):
    """The head trained on cached features in the embeddings mode (kit/models/heads.py)."""

    # linear, mlp (kit's training loop), logreg or lightgbm (fitted once per fold and seed)
    name: str = "linear"
    params: dict[str, Any] = Field(default_factory=dict)


class FinetuneConfig(Strict):
    """Which layers train when, and how fast: the transfer-learning schedule (kit/train/finetune.py).

    The network is cut into stages from input to output (timm's own grouping, or a scratch net's
    stages); the classifier is the last stage and always trains.
    """

    # full: everything trains from the start; linear_probe: only the classifier ever trains;
    # freeze_then_unfreeze: the classifier alone for freeze_epochs, then everything;
    # gradual: the classifier first, then one more stage from the top every epochs_per_stage epochs;
    # embeddings: the backbone is a fixed feature extractor whose features are cached (kit/features.py),
    # and `head` trains on them (linear_probe without augmentation trains its classifier the same way)
    mode: Literal[FINETUNE_MODES] = "full"
    freeze_epochs: int = Field(1, ge=0)
    epochs_per_stage: int = Field(1, gt=0)
    # layer-wise lr decay: stage i (of n, the classifier last) learns at lr * layer_decay ** (n - 1 - i)
    layer_decay: float | None = Field(None, gt=0, le=1)
    # batch norm keeps its pretrained statistics and affine weights (timm's freeze_batch_norm_2d)
    freeze_bn: bool = False
    head: HeadConfig = Field(default_factory=HeadConfig)

    @property
    def uses_features(self) -> bool:
        """Whether the backbone never trains, so its features can be computed once (with no augmentation)."""
        return self.mode in ("linear_probe", "embeddings")


class TrainConfig(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(64, gt=0)
    # one seed, or several: each seed is trained on every fold and kept as its own run
    seed: Seed | list[Seed] = 0
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    # clip the gradients' global L2 norm to this (None: no clipping)
    grad_clip: float | None = Field(None, gt=0)
    # keep an exponential moving average of the weights (timm's ModelEmaV3, with warm-up); validation, the
    # best epoch and the predictions then use the averaged weights
    ema_decay: float | None = Field(None, gt=0, lt=1)
    # airbench's Lookahead-EMA, which writes the average back into the weights (None: off)
    lookahead: LookaheadConfig | None = None
    # layers that initialise from the data (airbench's whitening stem: `init_from_data`) see this many
    # training images, normalised and unaugmented, before the first step; None: the first batch
    init_images: int | None = Field(None, gt=0)
    # stop a fold when the validation loss has not improved for this many epochs (None: train every epoch)
    early_stopping: int | None = Field(None, gt=0)
    # the epoch whose weights predict the held-out fold and the test set: `best`, the lowest validation
    # loss; `last`, the final epoch, for methods whose schedule ends on the model they mean (airbench's
    # decay to a small lr with the Lookahead averaging most strongly at the end), and which leaves the
    # held-out labels out of the choice
    keep: Literal["best", "last"] = "best"
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    # auto: bf16 autocast on CUDA (fp16 with loss scaling where bf16 is missing), fp32 on the CPU
    precision: Literal[PRECISIONS] = "auto"
    # the layout of images and activations: auto is channels_last on CUDA, contiguous (NCHW) on the CPU,
    # where channels_last pays for depthwise-separable nets (EfficientNet, MobileNet) but not for every net
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    # torch.compile the model for the training steps; only on CUDA (on the CPU the compile time is not
    # won back on small models), where it fuses kernels and cuts Python overhead per step
    compile: bool = False
    # also log each epoch as it ends: tensorboard writes event files per fold (kit/train/tensorboard.py;
    # needs the tensorboard extra). Never part of the hash: it changes what is watched, not what is trained
    log: Literal["none", "tensorboard"] = "none"

    @property
    def seeds(self) -> list[int]:
        return [self.seed] if isinstance(self.seed, int) else list(self.seed)

    @field_validator("seed")
    @classmethod
    def _distinct_seeds(cls, value):
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("a list of seeds must be non-empty and without repeats")
        return value

    @model_validator(mode="after")
    def _one_average(self):
        if self.lookahead is not None and self.ema_decay is not None:
            raise ValueError("ema_decay and lookahead both average the weights; choose one")
        if self.keep == "last" and self.early_stopping is not None:
            raise ValueError("early_stopping waits for the best epoch; with keep: last every epoch trains, remove one")
        return self


class CVConfig(Strict):
    folds: int = Field(5, ge=2)
    seed: Seed = 42


class PredictConfig(Strict):
    batch_size: int = Field(512, gt=0)


class ResourcesConfig(Strict):
    """What one (seed, fold) job asks of the node it runs on under --executor ray (docs/distributed.md): CPU
    cores (its torch threads) and GPUs, fractional ones shared by several jobs. Never part of the hash."""

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0)


class MixConfig(Strict):
    # the chance that a training batch is mixed this way
    p: float = Field(0.5, ge=0, le=1)
    # the mixing weight is drawn from Beta(alpha, alpha): small alpha mostly keeps one image, 1 is uniform
    alpha: float = Field(1.0, gt=0)


class AugmentConfig(Strict):
    """Train-time augmentation (kit/augment.py, docs/augmentation.md). Held-out and test images are never augmented."""

    # albumentations transforms by their own names, applied in order to each image: {Name: {argument: value}},
    # a bare Name, or a preset (light, medium, heavy); `augment: medium` alone is short for transforms: medium
    transforms: str | list[str | dict[str, Any]] = Field(default_factory=list)
    # batch-level mixing of image pairs and their labels (kit/train/mixing.py); a batch gets one of them at most
    mixup: MixConfig | None = None
    cutmix: MixConfig | None = None
    # processes augmenting batches (0: in the training process); results are the same for any number
    workers: int = Field(0, ge=0)
    # airbench's alternating flip: each image is mirrored in exactly every other epoch (which ones is drawn
    # once per image), on whole batches; takes the place of a random HorizontalFlip
    alternating_flip: bool = False

    @property
    def active(self) -> bool:
        return (bool(self.transforms) or self.mixup is not None or self.cutmix is not None
                or self.alternating_flip)

    @model_validator(mode="after")
    def _one_mix_per_batch(self):
        total = (self.mixup.p if self.mixup else 0) + (self.cutmix.p if self.cutmix else 0)
        if total > 1 + 1e-9:
            raise ValueError(f"mixup.p + cutmix.p is {total:g}; a batch gets one of them at most, so they must "
                             f"add up to 1 or less")
        return self


class TTAConfig(Strict):
    """Test-time augmentation (kit/tta.py): the views averaged for every prediction, held-out fold and test alike."""

    # a preset (none, flip, shift, flip_shift, airbench) or view names (identity, hflip, vflip, hvflip, shift_left,
    # shift_right, shift_up, shift_down and the diagonal ones, kit/tta.py); `tta: flip` alone is short for views: flip
    views: str | list[str] = "none"
    # how far the shift views move the image, as a fraction of its side (at least one pixel)
    shift: float = Field(0.0625, gt=0, lt=0.5)


class PseudoLabelConfig(Strict):
    """Test images the teacher is sure of join each fold's training rows (kit/teacher.py)."""

    # the teacher's top probability must be at least this for a test image to be pseudo-labelled
    threshold: float = Field(0.95, gt=0, le=1)
    # hard: the teacher's top class, as a label; soft: the teacher's probabilities as the target
    labels: Literal["hard", "soft"] = "hard"
    # a pseudo-labelled row's loss counts this much against a true label's 1
    weight: float = Field(1.0, gt=0)


class DistillConfig(Strict):
    """The loss mixes the true label with the teacher's probabilities (Hinton et al.'s knowledge distillation)."""

    # the teacher's share of the loss: (1 - weight) * cross entropy + weight * T^2 * KL(teacher_T || student_T)
    weight: float = Field(0.5, gt=0, le=1)
    # softens both distributions before they are compared (1: as they are)
    temperature: float = Field(1.0, gt=0)


class TeacherConfig(Strict):
    """Learn from a blend of stored models (kit/teacher.py, docs/teacher.md), by the fold rule: the
    student's fold k learns only from the teacher members' fold-k models, which never saw fold k's
    held-out labels (a learning blender is fitted without fold k's rows)."""

    # the teacher's members: model names or globs of the store, as kit blend -m takes them
    members: list[str] = Field(min_length=1)
    # how the members are combined: any kit blend method (kit blend --method)
    method: str = "soft"
    pseudo_labels: PseudoLabelConfig | None = None
    distill: DistillConfig | None = None

    @model_validator(mode="after")
    def _does_something(self):
        if self.pseudo_labels is None and self.distill is None:
            raise ValueError("a teacher teaches with pseudo_labels, distill, or both; give at least one")
        return self


class Recipe(Strict):
    name: str = Field(default="", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    # a built-in name, a competition YAML file, or an inline mapping (a dict until load_recipe resolves it
    # into its layout's spec; SerializeAsAny dumps that layout's own fields into the hash and recipe.yaml)
    competition: str | dict[str, Any] | SerializeAsAny[CompetitionSpec]
    model: ModelConfig
    # the side the network sees: every batch is resized to it from the size the competition keeps its images at
    # (image files of mixed sizes are also decoded at it); None: that size (a pretrained timm model: its own)
    image_size: int | None = Field(None, gt=0)
    cv: CVConfig = Field(default_factory=CVConfig)
    train: TrainConfig
    predict: PredictConfig = Field(default_factory=PredictConfig)
    # what each job asks of its node under an executor (kit/train/executors.py); where it runs, not what it computes
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    tta: TTAConfig = Field(default_factory=TTAConfig)
    # learn from stored models' predictions: pseudo-labels and distillation (None: from the labels alone)
    teacher: TeacherConfig | None = None
    # the search space of `kit tune` (kit/tune/space.py checks it, docs/tuning.md): kit train trains the recipe
    # as written and ignores it, and it is no part of the hash or of the stored recipe.yaml
    tune: dict[str, Any] | None = None
    # where the recipe came from, for error messages that surface later (training, blending)
    _source: str = PrivateAttr(default="recipe")

    @field_validator("augment", "tta", mode="before")
    @classmethod
    def _shorthand(cls, value, info):
        """`augment: medium` and `tta: flip` (or a list) stand for the section's main field."""
        if isinstance(value, (str, list)):
            return {"transforms" if info.field_name == "augment" else "views": value}
        return value

    @property
    def source(self) -> str:
        return self._source

    @property
    def competition_spec(self) -> CompetitionSpec:
        if not isinstance(self.competition, CompetitionSpec):
            raise RuntimeError("recipe not resolved; load it with load_recipe")
        return self.competition

    def resolved(self) -> dict:
        """The recipe with every default filled in, as stored beside the model."""
        return self.model_dump(mode="json", exclude={"tune"})

    @property
    def hash(self) -> str:
        """What decides the model's predictions; a changed hash means a different model.

        Not where the competition is: its root as spelled ('data/x', '/home/me/data/x', KIT_DATA's) says
        nothing about the result, and the data itself is the model's data fingerprint, checked beside
        this hash. Models stored before this had the root in; `legacy_hash` is that form, accepted for them."""
        recipe = self._hashed()
        del recipe["competition"]["root"]
        return stable_hash(recipe)

    @property
    def legacy_hash(self) -> str:
        """The hash as kit 0.1.0 computed it: with the competition root as spelled. A store's model of
        that hash is the same recipe (kit train takes it, and its model.json gets `hash` when next written)."""
        return stable_hash(self._hashed())

    def _hashed(self) -> dict:
        recipe = self.model_dump(mode="json", exclude={"name", "predict", "resources", "tune"})
        # augment and tta came after models were first stored: at their defaults they are left out, so
        # those models keep their hash; augment.workers changes how fast, never what is computed
        if self.augment.active:
            del recipe["augment"]["workers"]
        else:
            del recipe["augment"]
        del recipe["train"]["log"]  # how a run is watched, never what it computes
        if recipe["train"]["keep"] == "best":  # came later: at its default, models stored before keep their hash
            del recipe["train"]["keep"]
        # TTA as the store records it (kit/tta.py): a shift that no view uses changes nothing
        from .tta import TTA

        recipe["tta"] = TTA.from_config(self.tta).record
        if recipe["tta"] == "none":
            del recipe["tta"]
        _drop_later_defaults(recipe)
        return recipe


# fields added after models were first stored, with their defaults: left out of the hash at those
# defaults, so that the models keep their hash
_LATER_DEFAULTS = {
    ("train", "optimizer", "lr_per"): None, ("train", "optimizer", "norm_bias_lr_scale"): 1.0,
    ("train", "scheduler", "start_lr_ratio"): 0.2, ("train", "scheduler", "peak_at"): 0.23,
    ("train", "lookahead"): None, ("train", "init_images"): None, ("augment", "alternating_flip"): False,
    ("train", "memory_format"): "auto", ("train", "finetune", "head"): {"name": "linear", "params": {}},
    ("teacher",): None,
}


def _drop_later_defaults(recipe: dict) -> None:
    for path, default in _LATER_DEFAULTS.items():
        section = recipe
        for key in path[:-1]:
            section = section.get(key, {})
        if path[-1] in section and section[path[-1]] == default:
            del section[path[-1]]


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and resolve a recipe file; RecipeError names the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    return recipe_from_dict(read_recipe_file(path), source=str(path), default_name=path.stem)


def read_recipe_file(path: str | Path, _extended_by: tuple[Path, ...] = ()) -> Any:
    """A recipe file's own mapping, with the recipes it `extends:` merged under it (merged_recipe): what
    every reader of a recipe file starts from, so that a variant is the recipe it spells out. Not
    validated; a mapping unless the file holds something else (recipe_from_dict says what)."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    base = data["extends"]
    if not isinstance(base, str) or not base.endswith((".yaml", ".yml")):
        raise RecipeError(f"{path}: extends: expected the path of the recipe file this one varies (a .yaml "
                          f"file, relative to {path.parent}), got {base!r}")
    base_path = path.parent / base
    if not base_path.is_file():
        raise RecipeError(f"{path}: extends: no such recipe file '{base_path}' (the path is relative to "
                          f"the folder of {path.name})")
    chain = (*_extended_by, path.resolve())
    if base_path.resolve() in chain:
        raise RecipeError(f"{path}: extends: '{base}' leads back to {base_path.name}; a recipe cannot extend itself")
    inherited = read_recipe_file(base_path, chain)
    if not isinstance(inherited, dict):
        raise RecipeError(f"{base_path}: expected a mapping of recipe fields, got {type(inherited).__name__}")
    inherited.pop("name", None)  # the variant is named by its own file (or its own name:)
    return merged_recipe(inherited, {key: value for key, value in data.items() if key != "extends"})


def merged_recipe(base: Any, variant: Any) -> Any:
    """The variant over its base: mappings merge key by key, and anything else the variant gives replaces
    the base's (a list is one value: `augment.transforms` is the variant's own, not the base's plus it)."""
    if not isinstance(base, dict) or not isinstance(variant, dict):
        return variant
    merged = dict(base)
    for key, value in variant.items():
        merged[key] = merged_recipe(base[key], value) if key in base else value
    return merged


def recipe_from_dict(data: Any, source: str = "recipe", default_name: str = "") -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: expected a mapping of recipe fields, got {type(data).__name__}")
    data = dict(data)
    data.setdefault("name", default_name)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(source, Recipe, exc)) from None
    if not recipe.name:
        raise RecipeError(f"{source}: name: required when the recipe has no file name")
    recipe._source = source
    recipe.competition = resolve_competition(recipe.competition, source)
    from .augment import resolve_transforms
    from .tta import resolve_views

    try:  # presets expanded, so the stored recipe (and its hash) says what actually runs
        recipe.augment.transforms = resolve_transforms(recipe.augment.transforms)
        recipe.tta.views = resolve_views(recipe.tta.views)
    except RecipeError as exc:
        raise exc.at(source) from None
    if recipe.augment.alternating_flip and any("HorizontalFlip" in t for t in recipe.augment.transforms):
        raise RecipeError(f"{source}: augment.alternating_flip: already mirrors every image in every other epoch; "
                          f"remove HorizontalFlip from augment.transforms")
    from .models import check_model  # torch-heavy: imported only once a recipe is otherwise valid

    try:
        check_model(recipe.model.arch, recipe.model.params, recipe.model.pretrained, recipe.image_size)
        _check_embeddings(recipe)
        _check_teacher(recipe)
    except RecipeError as exc:
        raise exc.at(source) from None
    return recipe


def _check_embeddings(recipe: Recipe) -> None:
    finetune = recipe.train.finetune
    if finetune.head != HeadConfig() and finetune.mode != "embeddings":
        raise RecipeError(f"train.finetune.head: a head on cached features is for mode: embeddings (the mode "
                          f"is {finetune.mode})")
    if finetune.mode != "embeddings":
        return
    from .models.heads import check_head

    check_head(finetune.head.name, finetune.head.params)
    if recipe.augment.active:
        raise RecipeError("augment: the embeddings mode trains its head on features computed once from the "
                          "unaugmented images; remove augment (tta views are cached as features of their own), "
                          "or fine-tune with another finetune.mode")


def _check_teacher(recipe: Recipe) -> None:
    """What a recipe alone can tell of its teacher; the members themselves are checked in the store (kit/teacher.py)."""
    teacher = recipe.teacher
    if teacher is None:
        return
    from .blend.registry import blender_class
    from .errors import BlendError

    try:
        blender_class(teacher.method)
    except BlendError as exc:
        raise RecipeError(f"teacher.method: {str(exc).removeprefix('--method: ')}") from None
    if trains_on_features(recipe):
        raise RecipeError(f"teacher: a head on cached features (finetune.mode: {recipe.train.finetune.mode}) trains "
                          f"on the training images' features alone; pseudo-labels and distillation need the "
                          f"training loop on images (another finetune.mode)")


def trains_on_features(recipe: Recipe) -> bool:
    """Whether only a head trains, on features the backbone computes once: the embeddings mode, and a timm
    model's linear probe without augmentation (an augmented image's features differ every epoch)."""
    from .models import is_timm

    mode = recipe.train.finetune.mode
    return mode == "embeddings" or (mode == "linear_probe" and is_timm(recipe.model.arch) and not recipe.augment.active)
