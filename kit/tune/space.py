"""The search space of `kit tune`: a recipe's `tune:` section, read, checked and applied (no Optuna here).

    tune:
      train.optimizer.lr: {log_uniform: [1.0e-4, 1.0e-2]}
      model.params.widths: {choice: [[16, 32], [32, 64], [64, 128]]}
      model.params.dropout: {uniform: [0.0, 0.5]}
      train.epochs: {int: [4, 12], step: 2}
      model.arch: {choice: [vgg_small, resnet_small]}
      model.params.convs_per_stage: {int: [1, 2], when: {model.arch: vgg_small}}
      metric: log_loss                     # the rest are settings of the search, not recipe fields
      pruner: {name: median, startup_trials: 5, min_folds: 1}
      sampler: {seed: 0, startup_trials: 10}

Every key that is not a setting is a recipe field by its dotted path; its value says how the field
is drawn. A field with `when:` is drawn only in trials where the recipe, as drawn so far, has those
values (a choice of the field it names); in the others it keeps the recipe's own value.

A trial's recipe is the file's own mapping (less `tune:`) with the drawn values put in place, so it
spells the competition and every other field as the file does, and kit's recipe loading checks it
before anything trains. check_space checks the space the same way before the first trial: each
field's ends (and a value inside a float range) and each choice, one field at a time, then every
combination of them where there are few enough.
"""

from __future__ import annotations

import builtins
import copy
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from ..errors import RecipeError, did_you_mean
from ..metrics import HEADLINE
from ..recipe import Recipe, Seed, recipe_from_dict
from ..schema import Strict, format_validation_error

KINDS = ("uniform", "log_uniform", "int", "choice")
# fields a search may not change, and why
FIXED = {
    "name": "the trials are named <recipe>-t<n>",
    "competition": "every trial trains on the recipe's competition",
    "cv": "every trial must share the recipe's folds to be scored alike and blended",
    "tune": "the search space is not a recipe field",
}
# `augment: medium`, `tta: flip`: a field inside either makes the shorthand the section's main field
SHORTHAND = {"augment": "transforms", "tta": "views"}
# at most this many recipes are checked for the combinations of every field's ends and choices
COMBINATIONS = 256
MISSING = object()


class PrunerConfig(Strict):
    """Optuna's MedianPruner: a trial is stopped after a fold when the score of its completed folds is
    worse than the median of the finished trials' scores after as many folds."""

    name: Literal["median", "none"] = "median"
    # finished trials before any trial can be pruned
    startup_trials: int = Field(5, ge=0)
    # folds a trial completes before it can be pruned
    min_folds: int = Field(1, ge=1)


class SamplerConfig(Strict):
    """Optuna's TPE sampler."""

    # the first process's draws are reproducible from this; a resumed or second process adds the number of
    # trials it finds, so that two processes never draw the same values
    seed: Seed = 0
    # trials drawn at random before TPE models the results
    startup_trials: int = Field(10, ge=0)


class TuneOptions(Strict):
    # what the trials are scored by (their k-fold CV); None: kit tune --metric, else accuracy
    metric: Literal[tuple(HEADLINE)] | None = None
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    # trial 0 is the recipe's own values (those the space holds), so the search starts from the hand-written recipe
    start_with_recipe: bool = True


class SpaceEntry(Strict):
    """How one field is drawn: exactly one of the four kinds."""

    uniform: list[float] | None = None  # [low, high]
    log_uniform: list[float] | None = None  # [low, high], low > 0: uniform in log space (learning rates)
    int: list[builtins.int] | None = None  # [low, high], both included
    choice: list[Any] | None = None
    step: float | None = Field(None, gt=0)  # uniform and int: a grid from low
    log: bool = False  # int: drawn in log space (widths, batch sizes)
    when: dict[str, Any] | None = None  # drawn only when the recipe has these values (choices of other fields)

    @field_validator("uniform", "log_uniform", "int")
    @classmethod
    def _a_range(cls, value, info):
        if value is None:
            return value
        if len(value) != 2:
            raise PydanticCustomError("range", "expected [low, high], two numbers")
        low, high = value
        if not low < high:
            raise PydanticCustomError("range", "low must be below high (a field that does not vary is set in the "
                                               "recipe, not searched)")
        if info.field_name == "log_uniform" and low <= 0:
            raise PydanticCustomError("range", "a log-uniform range must be above 0")
        return value

    @field_validator("choice")
    @classmethod
    def _options(cls, value):
        if value is not None:
            if len(value) < 2:
                raise PydanticCustomError("choice", "a choice needs two options or more (a single one is set in the "
                                                    "recipe, not searched)")
            spelled = [json.dumps(v, sort_keys=True) for v in value]
            twice = next((v for v, s in zip(value, spelled) if spelled.count(s) > 1), MISSING)
            if twice is not MISSING:
                raise PydanticCustomError("choice", "option {option} is given twice", {"option": repr(twice)})
        return value


@dataclass
class Param:
    """One searched field, checked."""

    path: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: list = field(default_factory=list)
    when: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list:
        """The choices as Optuna stores them: scalars as they are, lists and mappings as compact JSON."""
        return [choice_label(v) for v in self.choices]

    def corners(self) -> list:
        """The values check_space tries: both ends (and one value inside a float range, so that a float range on a
        whole-number field fails there), or every choice."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [self.low, self.high]
        inside = self.low + 0.377 * (self.high - self.low) if self.kind == "uniform" else \
            self.low * (self.high / self.low) ** 0.377
        if self.step:
            inside = self.low + max(1, round((inside - self.low) / self.step)) * self.step
        return [self.low, inside, self.high] if self.low < inside < self.high else [self.low, self.high]

    def contains(self, value) -> bool:
        """Whether `value` (a recipe's own) is one this field can be drawn as."""
        if self.kind == "choice":
            return any(json.dumps(value, sort_keys=True) == json.dumps(c, sort_keys=True) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and int(value) != value:
            return False
        if not self.low <= value <= self.high:
            return False
        return not self.step or abs(((value - self.low) / self.step) - round((value - self.low) / self.step)) < 1e-9

    def suggest(self, trial):
        """The value of this field in an Optuna trial (or anything with its suggest_* methods)."""
        if self.kind == "choice":
            label = trial.suggest_categorical(self.path, self.labels)
            return copy.deepcopy(self.choices[self.labels.index(label)])
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.path, float(self.low), float(self.high), step=self.step,
                                   log=self.kind == "log_uniform")

    def describe(self) -> str:
        if self.kind == "choice":
            text = f"choice of {', '.join(str(label) for label in self.labels)}"
        else:
            text = f"{self.kind} [{self.low:g}, {self.high:g}]" + (f" step {self.step:g}" if self.step else "") + \
                   (" log" if self.log else "")
        return text + ("" if not self.when else f" when {', '.join(f'{p} = {v}' for p, v in self.when.items())}")


@dataclass
class Space:
    """The parsed `tune:` section: its fields in the order they are drawn, and the search's settings."""

    params: list[Param]
    options: TuneOptions
    source: str

    def record(self) -> list[dict]:
        """The space as JSON, kept in the study (a changed space is noticed)."""
        return [{"path": p.path, "kind": p.kind, "low": p.low, "high": p.high, "step": p.step, "log": p.log,
                 "choices": p.choices, "when": p.when} for p in self.params]


def choice_label(value):
    return value if value is None or isinstance(value, (str, int, float, bool)) else \
        json.dumps(value, separators=(", ", ": "))


def parse_space(section: Any, source: str) -> Space:
    """The `tune:` section of the recipe file `source`, checked field by field (names, kinds, ranges, conditions;
    check_space then tries the values on the recipe): RecipeError naming the file and the field."""
    if section is None:
        raise RecipeError(f"{source}: tune: the recipe has no search space; add a tune: section that maps recipe "
                          f"fields to ranges, e.g. tune: {{train.optimizer.lr: {{log_uniform: [1.0e-4, 1.0e-2]}}}} "
                          f"(docs/tuning.md)")
    if not isinstance(section, dict):
        raise RecipeError(f"{source}: tune: expected a mapping of recipe fields to ranges, got "
                          f"{type(section).__name__}")
    settings = {k: v for k, v in section.items() if k in TuneOptions.model_fields}
    try:
        options = TuneOptions.model_validate(settings)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(source, TuneOptions, exc, prefix="tune.")) from None
    params = []
    for path, value in section.items():
        if path in TuneOptions.model_fields:
            continue
        if not isinstance(path, str):
            raise RecipeError(f"{source}: tune: key {path!r} is not a recipe field's dotted path")
        check_path(path, source)
        if not isinstance(value, dict):
            raise RecipeError(f"{source}: tune.{path}: expected how to draw it, one of "
                              f"{{uniform|log_uniform|int: [low, high]}} or {{choice: [...]}}, got {value!r}")
        try:
            entry = SpaceEntry.model_validate(value)
        except ValidationError as exc:
            raise RecipeError(format_validation_error(source, SpaceEntry, exc, prefix=f"tune.{path}.")) from None
        params.append(_param(path, entry, source))
    if not params:
        raise RecipeError(f"{source}: tune: no recipe field to search, only settings "
                          f"({', '.join(settings)}); add fields, e.g. train.optimizer.lr: {{log_uniform: [1.0e-4, 1.0e-2]}}")
    return Space(params=_drawing_order(params, source), options=options, source=source)


def _param(path: str, entry: SpaceEntry, source: str) -> Param:
    kinds = [k for k in KINDS if getattr(entry, k) is not None]
    if len(kinds) != 1:
        raise RecipeError(f"{source}: tune.{path}: " + (f"give one of {', '.join(KINDS)}" if not kinds else
                                                        f"{' and '.join(kinds)} both given; give one"))
    kind = kinds[0]
    where = f"{source}: tune.{path}"
    if entry.step is not None and kind not in ("uniform", "int"):
        raise RecipeError(f"{where}.step: only a uniform or int range takes a step")
    if entry.log and kind != "int":
        raise RecipeError(f"{where}.log: only an int range takes log: true (for floats, use log_uniform)")
    if kind == "choice":
        return Param(path, kind, choices=entry.choice, when=entry.when or {})
    low, high = getattr(entry, kind)
    step = entry.step
    if kind == "int" and step is not None:
        if step != int(step):
            raise RecipeError(f"{where}.step: an int range's step is a whole number (got {step:g})")
        step = int(step)
    if step is not None:
        if entry.log:
            raise RecipeError(f"{where}: a log range takes no step")
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9:
            raise RecipeError(f"{where}: high {high:g} is not low {low:g} plus a whole number of steps of {step:g}; "
                              f"make it {low + int(n) * step:g} or {low + (int(n) + 1) * step:g}")
    return Param(path, kind, low=low, high=high, step=step, log=entry.log, when=entry.when or {})


def check_path(path: str, source: str) -> None:
    """A searched field must be a recipe field (or a key inside a free mapping such as model.params, which the
    architecture's own check takes up) that a search may change."""
    parts = path.split(".")
    where = f"{source}: tune.{path}"
    if any(not p for p in parts):
        raise RecipeError(f"{where}: not a dotted path of recipe fields (train.optimizer.lr)")
    if parts[0] in FIXED:
        raise RecipeError(f"{where}: {parts[0]} cannot be searched: {FIXED[parts[0]]}")
    model: type[BaseModel] | None = Recipe
    for i, part in enumerate(parts):
        if model is None:
            return  # inside a mapping of free keys (model.params): the architecture checks them
        fields = {k: v for k, v in model.model_fields.items() if not (model is Recipe and k in FIXED)}
        if part not in fields:
            if i == 0:
                settings = list(TuneOptions.model_fields)
                raise RecipeError(f"{where}: neither a recipe field nor a setting of the search"
                                  f"{did_you_mean(part, [*fields, *settings])}; recipe fields: {', '.join(fields)}; "
                                  f"settings: {', '.join(settings)}")
            raise RecipeError(f"{where}: {'.'.join(parts[:i])} has no field '{part}'{did_you_mean(part, fields)}; "
                              f"its fields: {', '.join(fields)}")
        annotation = fields[part].annotation
        model = _section(annotation)
        if model is None and i < len(parts) - 1 and not _is_mapping(annotation):
            raise RecipeError(f"{where}: {'.'.join(parts[:i + 1])} is a value, not a section with fields")


def _section(annotation) -> type[BaseModel] | None:
    import typing

    todo = [annotation]
    while todo:
        current = todo.pop()
        if isinstance(current, type) and issubclass(current, BaseModel):
            return current
        todo.extend(typing.get_args(current))
    return None


def _is_mapping(annotation) -> bool:
    import typing

    todo = [annotation]
    while todo:
        current = todo.pop()
        if current is dict or typing.get_origin(current) is dict:
            return True
        todo.extend(typing.get_args(current))
    return False


def _setters(param: Param, params: list[Param]) -> dict[str, list[Param]]:
    """For each condition of `param`, the choices that decide it: the field itself, or a section holding it."""
    return {cond: [p for p in params if p is not param and (cond == p.path or cond.startswith(p.path + "."))]
            for cond in param.when}


def _drawing_order(params: list[Param], source: str) -> list[Param]:
    """Sections before the fields inside them, and the choices a condition names before the fields they condition;
    otherwise the order of the file. Conditions are checked to name a choice and one of its options."""
    after: dict[int, set[int]] = {i: set() for i in range(len(params))}
    for i, p in enumerate(params):
        for cond, setters in _setters(p, params).items():
            where = f"{source}: tune.{p.path}.when.{cond}"
            choices = [s for s in setters if s.kind == "choice"]
            if not choices:
                raise RecipeError(f"{where}: no choice in tune: sets {cond}, so the condition never changes; search "
                                  f"{cond} with a choice, or drop the condition")
            wanted = p.when[cond]
            options = [inner(c, cond[len(s.path) + 1:]) if cond != s.path else c
                       for s in choices for c in s.choices]
            options = [o for o in options if o is not MISSING]
            if not any(json.dumps(o, sort_keys=True) == json.dumps(wanted, sort_keys=True) for o in options):
                shown = ", ".join(str(choice_label(o)) for o in options)
                raise RecipeError(f"{where}: {wanted!r} is none of the options tune: gives {cond} ({shown})"
                                  f"{did_you_mean(wanted, [str(o) for o in options])}")
            after[i].update(params.index(s) for s in setters)
        for j, q in enumerate(params):
            if p.path.startswith(q.path + "."):
                after[i].add(j)  # a section's value first, the fields inside it over it
    order, placed = [], set()
    while len(order) < len(params):
        ready = [i for i in range(len(params)) if i not in placed and after[i] <= placed]
        if not ready:
            stuck = [params[i].path for i in range(len(params)) if i not in placed]
            raise RecipeError(f"{source}: tune: the conditions of {', '.join(stuck)} depend on each other in a circle")
        order.append(ready[0])
        placed.add(ready[0])
    return [params[i] for i in order]


def inner(value, path: str):
    """The value at dotted `path` inside `value` (MISSING where there is none)."""
    for key in path.split(".") if path else []:
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


def set_path(recipe: dict, path: str, value, source: str) -> None:
    """Put `value` at dotted `path` in a recipe's mapping, making the sections on the way."""
    parts = path.split(".")
    node = recipe
    for i, key in enumerate(parts[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif i == 0 and key in SHORTHAND and isinstance(child, (str, list)):
            child = node[key] = {SHORTHAND[key]: child}
        elif not isinstance(child, dict):
            raise RecipeError(f"{source}: tune.{path}: {'.'.join(parts[:i + 1])} is {child!r} in the recipe, not a "
                              f"section to set {parts[i + 1]} in")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def active(param: Param, recipe: dict) -> bool:
    return all(json.dumps(inner(recipe, cond), sort_keys=True, default=str) == json.dumps(v, sort_keys=True)
               for cond, v in param.when.items())


def build(space: Space, base: dict, pick: Callable[[Param], Any]) -> tuple[dict, dict]:
    """A trial's recipe mapping: `base` (the file's own, less tune:) with each active field's value from
    `pick(param)` put in place (pick returns MISSING to leave the recipe's own value)
    -> (the recipe mapping, the fields set: path -> value)."""
    recipe = copy.deepcopy(base)
    recipe.pop("tune", None)
    chosen = {}
    for param in space.params:
        if not active(param, recipe):
            continue
        value = pick(param)
        if value is MISSING:
            continue
        set_path(recipe, param.path, value, space.source)
        chosen[param.path] = value
    return recipe, chosen


def sample(space: Space, base: dict, trial) -> tuple[dict, dict]:
    """build() with each field drawn by an Optuna trial (a resumed trial gets back the values it drew)."""
    return build(space, base, lambda param: param.suggest(trial))


def shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(choice_label(value))


def check_space(space: Space, base: dict, name: str) -> int:
    """Load the recipes the space's extremes make through kit's own recipe loading (recipe_from_dict), so that a
    field, range or choice the recipe cannot take fails now, before any trial: each field's corners alone (the
    others as the recipe has them, the choices its condition needs set), then every combination of every field's
    corners when there are at most COMBINATIONS. -> the number of recipes checked."""
    checked: set[str] = set()

    def load(recipe: dict, where: str) -> None:
        key = json.dumps(recipe, sort_keys=True, default=str)
        if key in checked:
            return
        checked.add(key)
        recipe_from_dict(recipe, source=where, default_name=name)

    for param in space.params:
        needs = _enabling(param, space)
        for corner in param.corners():
            picks = {**needs, param.path: corner}
            recipe, chosen = build(space, base, lambda p: picks.get(p.path, MISSING))
            if param.path not in chosen:
                raise RecipeError(f"{space.source}: tune.{param.path}.when: never holds with the choices that set "
                                  f"its fields (a condition on a field that is itself conditional, which excludes it)")
            load(recipe, f"{space.source}: tune.{param.path} = {shown(corner)}")
    for picks in _combinations(space, base):
        recipe, chosen = build(space, base, lambda p: picks.get(p.path, MISSING))
        load(recipe, f"{space.source}: tune: with " + ", ".join(f"{p} = {shown(v)}" for p, v in chosen.items()))
    return len(checked)


def _enabling(param: Param, space: Space, seen: frozenset = frozenset()) -> dict:
    """Choices that make `param`'s conditions (and those of the choices themselves) hold: path -> option."""
    picks: dict = {}
    for cond, wanted in param.when.items():
        for setter in _setters(param, space.params)[cond]:
            if setter.kind != "choice" or setter.path in seen:
                continue
            rest = cond[len(setter.path) + 1:] if cond != setter.path else ""
            option = next((c for c in setter.choices if json.dumps(inner(c, rest), sort_keys=True)
                           == json.dumps(wanted, sort_keys=True)), MISSING)
            if option is not MISSING:
                picks.update(_enabling(setter, space, seen | {param.path}))
                picks[setter.path] = option
                break
    return picks


def _combinations(space: Space, base: dict):
    """Every combination of the fields' corners (a conditional field's only where it is active), or nothing when
    there would be more than COMBINATIONS."""
    total = 1
    for param in space.params:
        total *= len(param.corners()) + (1 if param.when else 0)
        if total > COMBINATIONS:
            return []
    if len(space.params) < 2:
        return []
    found = []
    for combo in itertools.product(*[param.corners() for param in space.params]):
        found.append({p.path: v for p, v in zip(space.params, combo)})
    return found
