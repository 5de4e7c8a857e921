"""The device and the numeric settings that come with it.

On CUDA: bf16 autocast where the GPU supports it (else fp16 with a grad scaler), channels_last
memory format and TF32 matmuls. On a CPU that multiplies bf16 in hardware (AMX tiles: Intel Xeon
since Sapphire Rapids; AVX512-BF16: those Xeons and AMD EPYC since Zen 4): bf16 autocast and
channels_last, the layout oneDNN's bf16 convolutions want (bench/cpu_precision.py: airbench's net
trained 4.2x faster than in fp32 contiguous on a 2-core Xeon with AMX, 3.0x on a 2-core EPYC with
AVX512-BF16, resnet_small 5.7x there). On any other CPU: plain fp32, which is what such CPUs are
fast at (bf16 autocast trained a small CNN at 0.5x fp32 on one without these units). A recipe's
train.precision (fp32, bf16, fp16) overrides the automatic choice on either, and its
train.memory_format the layout: channels_last pays on the CPU in fp32 too for some nets
(EfficientNet-Lite0 trained 1.4x faster at 128 px in fp32 on one of these CPUs), not for every net.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..errors import KitError


@dataclass(frozen=True)
class DeviceSettings:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: no autocast
    channels_last: bool

    @property
    def uses_grad_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x


_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str = "auto", precision: str = "auto", memory_format: str = "auto") -> DeviceSettings:
    """'auto' takes CUDA when present; 'cpu' or 'cuda[:i]' force one. `precision`: auto, fp32, bf16 or fp16;
    `memory_format`: auto (channels_last on CUDA), channels_last or contiguous."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = _checked_device(name)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return DeviceSettings(device, amp if precision == "auto" else _PRECISIONS[precision],
                              channels_last=memory_format != "contiguous")
    bf16 = precision == "auto" and cpu_has_bf16_units()  # auto there: bf16, and the layout its kernels want
    amp = torch.bfloat16 if bf16 else _PRECISIONS.get(precision)
    channels_last = memory_format == "channels_last" or (memory_format == "auto" and bf16)
    return DeviceSettings(device, amp, channels_last=channels_last)


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16), which makes bf16 convolutions
    and matmuls several times faster than fp32; without them oneDNN emulates bf16, slower than fp32."""
    return _cpu_reports("_is_amx_tile_supported") or _cpu_reports("_is_avx512_bf16_supported")


def _cpu_reports(probe_name: str) -> bool:
    probe = getattr(torch.cpu, probe_name, None)  # private in torch 2.x; absent: assume the CPU lacks it
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def _checked_device(name: str) -> torch.device:
    """torch.device(name), refused in one line (before anything is written) when this machine lacks it."""
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise KitError(f"--device: '{name}' is not a device kit trains on; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise KitError(f"--device: '{name}', but this machine has no CUDA device (or PyTorch was built "
                           f"without CUDA); use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise KitError(f"--device: '{name}', but this machine has {count} CUDA device(s): "
                           f"cuda:0 to cuda:{count - 1}")
    return device
