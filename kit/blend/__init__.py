"""Blenders (one scikit-learn-style contract) and the `kit blend` run over the store."""

# registration order is the order `--method all` lists them in: simplest first
from . import voting  # noqa: F401,I001
from . import averaging  # noqa: F401,I001
from . import weights  # noqa: F401,I001
from . import selection  # noqa: F401,I001
from . import hill  # noqa: F401,I001
from . import stacking  # noqa: F401,I001
from .base import Blender
from .registry import create_blender, list_blenders, parse_params, register_blender
from .run import BlendResult, blend

__all__ = ["BlendResult", "Blender", "blend", "create_blender", "list_blenders", "parse_params", "register_blender"]
