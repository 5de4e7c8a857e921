"""Shared pieces for kit's pydantic schemas: strict models and one-line validation errors."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .errors import RecipeError, did_you_mean, reason

# a recipe is a few dozen values: more once aliases are expanded is an alias bomb (or a recursive alias)
MAX_YAML_VALUES = 100_000
# the largest integer NumPy and torch take (int64); a bigger one would be an OverflowError deep in training
MAX_INT = 2**63 - 1


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error, not the last one kept."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # `<<: *base` merges are YAML's own way of overriding: allowed
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise RecipeError(f"line {line}: key '{key}' written twice (first on line {seen[key]}); "
                                      f"YAML would keep only the last, so give it once")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """A recipe's or competition's YAML file, read as UTF-8; bad YAML or bad bytes, a key written twice
    or aliases that expand without bound are one RecipeError line."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid YAML ({reason(exc, limit=None)})") from None
    except RecipeError as exc:
        raise exc.at(path) from None
    if _count_values(data, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise RecipeError(f"{path}: expands to more than {MAX_YAML_VALUES} values (anchors and aliases nested "
                          f"in each other, or an alias inside itself); write the values out")
    return data


def _count_values(data: Any, budget: int) -> int:
    """How many values `data` holds once every alias is expanded, counting no further than just past `budget`."""
    count, todo = 0, [data]
    while todo and count <= budget:
        value = todo.pop()
        count += 1
        if isinstance(value, dict):
            todo.extend(value.keys())
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
    return count


def _wants_numbers(annotation) -> bool:
    """Whether a field takes numbers (int, float, or a Literal of them) but no booleans."""
    found, todo = set(), [annotation]
    while todo:
        current = todo.pop()
        if current in (bool, int, float):
            found.add(current)
        elif typing.get_origin(current) is typing.Literal:
            found.update(type(v) for v in typing.get_args(current))
        else:
            todo.extend(typing.get_args(current))
    return bool(found & {int, float}) and bool not in found


class Strict(BaseModel):
    """A schema section: unknown keys are errors, values are checked on assignment too; numbers are
    finite, fit in 64 bits, and are never booleans (YAML reads `epochs: true` as True, which Python,
    and so pydantic, would take for 1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(),
                              allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value, info: ValidationInfo):
        field = cls.model_fields.get(info.field_name)
        if field is None or not _wants_numbers(field.annotation):
            return value
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                raise PydanticCustomError("bool_not_number", "input should be a number, not true or false")
            if isinstance(item, int) and abs(item) > MAX_INT:
                raise PydanticCustomError("int_too_large", "input should be at most 2**63 - 1 in size")
        return value


def _field_model(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The schema class that sits at `loc` inside `model` (for listing its allowed keys)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = None
        candidates = [field.annotation]
        while candidates:
            annotation = candidates.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                current = annotation
                break
            candidates.extend(typing.get_args(annotation))
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe(model: type[BaseModel], error: dict) -> str:
    loc = tuple(error["loc"])
    path = _path(loc) or "(top level)"
    kind = error["type"]
    given = error.get("input")
    if kind == "extra_forbidden":
        parent = _field_model(model, loc[:-1])
        if parent is None:
            return f"{path}: unknown key; allowed keys here: see the docs"
        return (f"{path}: unknown key; allowed keys here: {', '.join(parent.model_fields)}"
                f"{did_you_mean(loc[-1], parent.model_fields)}")
    if kind == "missing":
        return f"{path}: required, but missing"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        expected = expected.replace("'", "").replace(" or ", ", ")
        return f"{path}: {given!r} is not one of {expected}"
    return f"{path}: {error['msg'][0].lower() + error['msg'][1:]} (got {given!r})"


_BRANCH_NAMES = {"int", "str", "float", "bool", "list", "dict", "tuple", "function-after", "function-before",
                 "function-wrap", "literal", "none", "lax-or-strict", "json-or-python", "constrained-int",
                 "constrained-float", "is-instance", "union"}


def _schema_class_names() -> set[str]:
    """The names of every schema class (Strict and its subclasses, however deep)."""
    names, todo = set(), [Strict]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _path(loc) -> str:
    """The dotted path a user wrote ('train.optimizer.name') from a pydantic error's loc.

    pydantic puts the name of the union branch it tried into loc ('int', 'str', 'function-after[...]',
    or a schema class's name such as 'CompetitionSpec'); users never wrote those, so they are dropped.
    A key of the user's that merely starts with a capital letter ('Train') is kept."""
    classes = _schema_class_names()
    return ".".join(str(p) for p in loc
                    if not (isinstance(p, str) and (p in _BRANCH_NAMES or "[" in p or p in classes)))


def format_validation_error(source: str, model: type[BaseModel], exc: ValidationError, limit: int = 3,
                            prefix: str = "") -> str:
    """'recipes/x.yaml: train.optimizer.name: 'adamx' is not one of adam, adamw, ...' on one line."""
    errors = exc.errors(include_url=False)
    # `str | Section` given a mapping fails both branches: drop the "not a str" error when the
    # other branch says what is wrong inside the mapping
    paths = [_path(e["loc"]) for e in errors]
    errors = [e for e, path in zip(errors, paths)
              if not (e["type"].endswith("_type") and any(o != path and o.startswith(path + ".") for o in paths))]
    # a value that fails every branch of a union yields one error per branch; say it once
    seen, lines = set(), []
    for error in errors:
        text = prefix + _describe(model, error)
        key = text.split(":", 1)[0]
        if key in seen:
            continue
        seen.add(key)
        lines.append(text)
    more = f" (and {len(lines) - limit} more)" if len(lines) > limit else ""
    return f"{source}: " + "; ".join(lines[:limit]) + more
