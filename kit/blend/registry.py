"""Blenders by name, as models are: `--method soft` builds SoftVote(); `--param caruana.iterations=200`
sets a parameter of one by name, checked against its constructor's defaults."""

from __future__ import annotations

import yaml

from ..errors import BlendError, did_you_mean

_BLENDERS: dict[str, type] = {}


def register_blender(name: str):
    def register(cls):
        if name in _BLENDERS:
            raise ValueError(f"blender '{name}' is registered twice")
        cls.method_name = name
        _BLENDERS[name] = cls
        return cls
    return register


def list_blenders() -> list[str]:
    return list(_BLENDERS)


def blender_class(name: str) -> type:
    if name not in _BLENDERS:
        raise BlendError(f"--method: unknown blender '{name}'{did_you_mean(name, _BLENDERS)}; "
                         f"known: {', '.join(_BLENDERS)}, or all")
    return _BLENDERS[name]


def blender_defaults(name: str) -> dict:
    """A blender's parameters and their defaults (every blender can be built without arguments)."""
    return blender_class(name)().get_params()


def create_blender(name: str, **params):
    """The blender called `name`; a parameter that it lacks, or of the wrong type, is a BlendError."""
    defaults = blender_defaults(name)
    for key, value in params.items():
        if key not in defaults:
            raise BlendError(f"--param: blender '{name}' has no parameter '{key}'{did_you_mean(key, defaults)}; "
                             f"its parameters: {', '.join(defaults) or 'none'}")
        params[key] = _check_type(f"{name}.{key}", value, defaults[key])
    return blender_class(name)(**params)


def _check_type(field: str, value, default):
    """The value, if it has the default's type (an int is accepted for a float); None defaults accept
    anything, and the blender checks the value when it is fitted."""
    if default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise BlendError(f"--param {field}: expected {type(default).__name__} like {default!r}, got {value!r}")
    return value


def parse_params(texts: list[str], methods: list[str]) -> dict[str, dict]:
    """`["caruana.iterations=200", "class_weight=balanced"]` -> {"caruana": {"iterations": 200}, "lgbm": {...}}.

    `NAME.KEY=VALUE` sets one blender's parameter; `KEY=VALUE` sets it on every blender in `methods`
    that has it. Values are read as YAML: 200, 0.5, true, null, [0.7, 0.3], balanced."""
    params: dict[str, dict] = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BlendError(f"--param: expected KEY=VALUE or METHOD.KEY=VALUE (e.g. caruana.iterations=200), got '{text}'")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        name, dot, field = key.rpartition(".")
        if dot:
            blender_class(name)  # unknown blender -> error listing the known
            if name not in methods:
                raise BlendError(f"--param {key}: blender '{name}' is not among --method ({', '.join(methods)})")
            targets = [name]
        else:
            targets = [m for m in methods if field in blender_defaults(m)]
            if not targets:
                raise BlendError(f"--param {key}: no blender in --method ({', '.join(methods)}) has a parameter "
                                 f"'{field}'; name one as METHOD.{field}=VALUE")
        for name in targets:
            params.setdefault(name, {})[field] = value
    return params
