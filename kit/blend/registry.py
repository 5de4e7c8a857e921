"""Blenders by name, as models are: `--method soft` builds SoftVote()."""

from __future__ import annotations

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


def create_blender(name: str, **params):
    if name not in _BLENDERS:
        raise BlendError(f"--method: unknown blender '{name}'{did_you_mean(name, _BLENDERS)}; "
                         f"known: {', '.join(_BLENDERS)}, or all")
    return _BLENDERS[name](**params)
