"""Decoding image files into one uint8 N x H x W x C array, in parallel worker processes.

Each worker writes its chunk straight into the .npy file being built (opened as a memory map), so
decoded pixels never travel through a pipe; it sends back only a short hash of each file's bytes
(what the data fingerprint is made of) or the first file it could not read.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError, reason
from ..progress import SILENT, Reporter

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
# below this many images a worker pool costs more than it saves
MIN_PARALLEL = 512
# the reporter's task a decode advances (the cache starts and finishes it)
DECODE_TASK = "decode"


class MixedSizesError(DataError):
    """Images of different sizes and no size to resize them to (the caller may have a fallback)."""


MIXED = "mixed sizes"
# how a MixedSizesError ends, whether the cache's probe or a decoding worker found the odd image
NEEDS_A_SIZE = f"images of {MIXED} need an image_size (in the competition or the recipe) to be resized to"


def mixed_channels(mode: str, other: str) -> str:
    """Why an image of `mode` cannot join images of the other kind, such as the file `other`."""
    kind, others = ("grayscale", "colour") if mode in GRAY_MODES else ("colour", "grayscale")
    return (f"a {kind} image ({mode}) among {others} ones such as {other}; set channels: 3 in the competition "
            f"to decode them all in colour, or channels: 1 for grayscale")


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def to_array(image: Image.Image, size: int | None, channels: int) -> np.ndarray:
    """A PIL image as uint8 H x W x C: upright (EXIF), converted to L or RGB, resized to size x size."""
    if size is not None:
        image.draft("L" if channels == 1 else "RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
    image = ImageOps.exif_transpose(image)
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != (size, size):
        # stretched, not cropped (as most Kaggle pipelines do); PIL's bilinear filter antialiases when shrinking
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def decode_image(path: str | Path, size: int | None = None, channels: int = 3) -> np.ndarray:
    """One image file as uint8 H x W x C (the same decoding the cache uses, for predicting new images)."""
    try:
        with Image.open(path) as image:
            return to_array(image, size, channels)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for a damaged file
        raise DataError(f"{path}: not a readable image ({reason(exc)})") from None


@dataclass(frozen=True)
class Probe:
    path: str
    size: tuple[int, int]  # width, height
    mode: str


def probe_images(paths: list[str], count: int = 16) -> list[Probe]:
    """Size and mode of up to `count` images spread over `paths`, from their headers only."""
    picks = sorted({round(i) for i in np.linspace(0, len(paths) - 1, min(count, len(paths)))})
    probes = []
    for i in picks:
        try:
            with Image.open(paths[i]) as image:
                probes.append(Probe(paths[i], upright_size(image), image.mode))
        except Exception as exc:
            raise DataError(f"{paths[i]}: not a readable image ({reason(exc)})") from None
    return probes


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) once turned upright: EXIF orientations 5 to 8 swap the two."""
    return image.size[::-1] if image.getexif().get(0x0112, 1) in (5, 6, 7, 8) else image.size


def decode_files(target: Path, paths: list[str], size: int | None, channels: int, native: tuple[int, int],
                 reporter: Reporter = SILENT, workers: int | None = None, like: str | None = None) -> list[bytes]:
    """Decode `paths` into the rows of the .npy file `target`; the hash of each file's bytes, in order.
    Each decoded chunk advances `reporter`'s task DECODE_TASK.

    With `size` None every image must be `native` (width, height) pixels; else each is resized to size x size.
    `like`: `channels` was inferred from the images, of which `like` is one: an image of the other kind
    (colour among grayscale, or grayscale among colour) is an error rather than converted, so that
    the channels never depend on which images came first."""
    workers = default_workers() if workers is None else max(1, workers)
    chunk = int(np.clip(len(paths) // (workers * 16), 64, 2048))
    tasks = [(str(target), start, paths[start:start + chunk], size, channels, native, like)
             for start in range(0, len(paths), chunk)]
    digests: list[list[bytes]] = [[] for _ in tasks]
    if workers == 1 or len(paths) < MIN_PARALLEL:
        for t, task in enumerate(tasks):
            digests[t] = _finish(decode_chunk(*task), task)
            reporter.advance(DECODE_TASK, len(task[2]))
        return [d for part in digests for d in part]
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        futures = {pool.submit(decode_chunk, *task): t for t, task in enumerate(tasks)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION, timeout=0.5)
                for future in done:
                    t = futures[future]
                    digests[t] = _finish(future.result(), tasks[t])
                    reporter.advance(DECODE_TASK, len(tasks[t][2]))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [d for part in digests for d in part]


def _finish(result: tuple[list[bytes], tuple | None], task: tuple) -> list[bytes]:
    digests, failure = result
    if failure is not None:
        index, message, mixed = failure
        raise (MixedSizesError if mixed else DataError)(f"{task[2][index]}: {message}")
    return digests


def decode_chunk(target: str, offset: int, paths: list[str], size: int | None, channels: int,
                 native: tuple[int, int], like: str | None = None) -> tuple[list[bytes], tuple | None]:
    """Worker: decode `paths` into rows offset.. of `target`; (file hashes, None) or
    (hashes so far, (index, message, whether the image's size is what failed))."""
    out = np.load(target, mmap_mode="r+")
    digests = []
    try:
        for i, path in enumerate(paths):
            try:
                with open(path, "rb") as f:
                    data = f.read()
                with Image.open(io.BytesIO(data)) as image:
                    if size is None and image.size != native and upright_size(image) != native:
                        width, height = upright_size(image)
                        return digests, (i, f"{width}x{height} pixels where the other images are "
                                            f"{native[0]}x{native[1]}; {NEEDS_A_SIZE}", True)
                    if like is not None and (image.mode in GRAY_MODES) != (channels == 1):
                        return digests, (i, mixed_channels(image.mode, like), False)
                    out[offset + i] = to_array(image, size, channels)
            except Exception as exc:  # a damaged file is the user's data, not a bug: report which one
                return digests, (i, f"not a readable image ({reason(exc)})", False)
            digests.append(hashlib.blake2b(data, digest_size=8).digest())
    finally:
        out.flush()
        del out
    return digests, None
