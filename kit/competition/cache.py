"""The decoded-image cache: a competition's image files decoded once into uint8 .npy files that
every later run memory-maps (no decoding, no copy into memory until a batch is gathered).

    <root>/.kit-cache/<slot>/      slot: the decode settings, e.g. 'native-auto' or '128px-3ch'
        train.npy  test.npy        uint8 N x H x W x C, rows in the competition's id order
        meta.json                  written last: the key it was built for, shapes, the source hash

The key is a hash of the ordered file lists with each file's size and modification time: a
changed, added or removed image (or a reordered CSV) means a new decode. The source hash, of
every file's bytes, is computed while decoding and kept in meta.json; the data fingerprint is
made from it, so no later run reads the images again to fingerprint them. Each decode size has
its own slot, so recipes at different sizes do not evict each other.

A decode writes to temporary files and renames them into place after removing the old
meta.json, so a killed decode never leaves a cache that a later run trusts. KIT_CACHE moves the
cache elsewhere (for a read-only root such as Kaggle's /kaggle/input):
<KIT_CACHE>/<root's folder name>-<hash of its path>/<slot>/.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import fileio
from ..errors import DataError
from ..progress import SILENT, Reporter
from .decode import (DECODE_TASK, GRAY_MODES, MIXED, NEEDS_A_SIZE, MixedSizesError, decode_files, mixed_channels,
                     probe_images)
from .spec import CompetitionSpec, ImageFilesSpec

CACHE_VERSION = 1


@dataclass
class CachedImages:
    train: np.ndarray  # read-only np.memmap, N x H x W x C
    test: np.ndarray
    folder: Path
    meta: dict
    decoded: bool  # this call decoded the files (else it found them cached)


def cache_folder(spec: CompetitionSpec) -> Path:
    custom = os.environ.get("KIT_CACHE")
    if custom:
        # one folder per competition root, as beside the data: a subset of it shares the decoded images
        root = spec.root.resolve()
        return Path(custom) / f"{root.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
    return spec.root / ".kit-cache"


def slot_name(size: int | None, channels: int | None) -> str:
    return f"{'native' if size is None else f'{size}px'}-{'auto' if channels is None else f'{channels}ch'}"


def file_stamps(spec: ImageFilesSpec, train: list[str], test: list[str]) -> tuple[bytes, bytes]:
    """Each split's files in order, one 'name\\0size\\0mtime_ns' line each: what the cache key depends on.

    Paths count relative to the root, so a moved competition folder keeps its cache. Stat-ing every
    file is the slow part of a key, so it is done once per load, whatever the slots tried."""
    root = os.path.join(str(spec.root), "")
    stamps = []
    for split in (train, test):
        lines = []
        for path in split:
            st = os.stat(path)
            name = path[len(root):] if path.startswith(root) else os.path.relpath(path, spec.root)
            lines.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n")
        stamps.append("".join(lines).encode())
    return stamps[0], stamps[1]


def cache_key(stamps: tuple[bytes, bytes], size: int | None, channels: int | None) -> str:
    """What the cache's content depends on: the ordered files with their sizes and times, and the settings."""
    # inferred channels once came from a sample of the images, so a colour image among grayscale ones made
    # the whole set colour when sampled: those caches are not trusted (explicit channels' caches are)
    inferred = [] if channels is not None else ["channels from every image"]
    h = hashlib.sha256(json.dumps([CACHE_VERSION, size, channels] + inferred).encode())
    for split in stamps:
        h.update(b"|split|")
        h.update(split)
    return h.hexdigest()[:24]


def load_or_decode(spec: ImageFilesSpec, train: list[str], test: list[str], size: int | None,
                   reporter: Reporter = SILENT, workers: int | None = None,
                   fallback_size: int | None = None, decode: bool = True) -> CachedImages:
    """The images of `train` and `test` as memory-mapped uint8 arrays, decoded now unless already cached.

    With no `size`, images keep their own size when they all share one (recipes resize at batch
    time, so a 224-px recipe on 32-px images does not cache 49 times the pixels); only images of
    mixed sizes are resized, to `fallback_size` (a recipe's image_size). With `decode` False, a
    missing cache is a DataError instead of a decode (a report's thumbnails never start one)."""
    sizes = [size] if size is not None else [None] + ([fallback_size] if fallback_size else [])
    stamps = file_stamps(spec, train, test)
    for candidate in sizes:
        cached = _open_cached(cache_folder(spec) / slot_name(candidate, spec.channels),
                              cache_key(stamps, candidate, spec.channels))
        if cached is not None:
            return cached
    if not decode:
        raise DataError(f"{spec.name}: its images are not decoded (no cache for the current files in "
                        f"{cache_folder(spec)}); kit prepare decodes them")
    for i, candidate in enumerate(sizes):
        try:
            return _decode(spec, cache_folder(spec) / slot_name(candidate, spec.channels),
                           cache_key(stamps, candidate, spec.channels), train, test, candidate,
                           reporter, workers)
        except MixedSizesError:
            if i == len(sizes) - 1:
                raise
            reporter.message(f"{spec.name}: images of {MIXED}; decoding them at the recipe's {fallback_size} px")


def open_arrays(folder: Path, key: str) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """(train, test, meta) memory-mapped from a cache folder built for `key` (meta.json written last, with
    the shapes); None when it is missing, damaged or built for another key. The feature cache shares it."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return None
        train = np.load(folder / "train.npy", mmap_mode="r")
        test = np.load(folder / "test.npy", mmap_mode="r")
    except (OSError, ValueError):  # missing or damaged: build again
        return None
    if list(train.shape) != meta.get("train_shape") or list(test.shape) != meta.get("test_shape"):
        return None
    return train, test, meta


def _open_cached(folder: Path, key: str) -> CachedImages | None:
    found = open_arrays(folder, key)
    return None if found is None else CachedImages(found[0], found[1], folder, found[2], decoded=False)


def _decode(spec: ImageFilesSpec, folder: Path, key: str, train: list[str], test: list[str], size: int | None,
            reporter: Reporter, workers: int | None) -> CachedImages:
    probes = probe_images(train) + probe_images(test, count=4)
    channels, like = spec.channels, None
    if channels is None:  # from every image: the sample's kind, and a decoding worker refuses an image of the other
        colour = [p for p in probes if p.mode not in GRAY_MODES]
        gray = [p for p in probes if p.mode in GRAY_MODES]
        if colour and gray:  # named as a worker would: the odd one (the fewer sampled) among the others
            odd, others = (colour, gray) if len(colour) <= len(gray) else (gray, colour)
            raise DataError(f"{odd[0].path}: {mixed_channels(odd[0].mode, others[0].path)}")
        channels, like = (3, colour[0].path) if colour else (1, gray[0].path)
    native = probes[0].size
    if size is None:
        other = next((p for p in probes if p.size != native), None)
        if other is not None:
            raise MixedSizesError(f"{other.path}: {other.size[0]}x{other.size[1]} pixels where {probes[0].path} is "
                                  f"{native[0]}x{native[1]}; {NEEDS_A_SIZE}")
    height, width = (size, size) if size is not None else (native[1], native[0])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{folder}: cannot create the image cache ({exc.strerror}); set KIT_CACHE to a writable "
                        f"folder") from None

    need, free = (len(train) + len(test)) * height * width * channels, shutil.disk_usage(folder).free
    if need > free:  # np.memmap would make a sparse file of any size, and the disk fill up while decoding
        raise DataError(f"{spec.name}: decoding {len(train) + len(test)} images at {width}x{height} px needs "
                        f"{need / 2**30:,.1f} GiB for the image cache in {folder}, more than the {free / 2**30:,.1f} "
                        f"GiB free there; set a smaller image_size (the competition's, or the recipe's for images "
                        f"of {MIXED}), or KIT_CACHE to a larger disk")
    started = time.perf_counter()
    temporary = []
    reporter.start(DECODE_TASK, f"{spec.name}: decoding {len(train) + len(test)} images", total=len(train) + len(test))
    try:
        digests = []
        for split, paths in (("train", train), ("test", test)):
            fd, tmp = tempfile.mkstemp(prefix=f".{split}.", suffix=".npy.tmp", dir=folder)
            os.close(fd)
            fileio.as_if_opened(tmp)
            temporary.append(Path(tmp))
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), height, width, channels)).flush()
            digests += decode_files(Path(tmp), paths, size, channels, native, reporter, workers, like=like)
        for tmp in temporary:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        seconds = time.perf_counter() - started
        # meta.json is the mark of a whole cache: it goes first and comes back last
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / "meta.json")
        for split, tmp in zip(("train", "test"), temporary):
            os.replace(tmp, folder / f"{split}.npy")
        meta = {
            "version": CACHE_VERSION,
            "key": key,
            "competition": spec.name,
            "root": str(spec.root),
            "train_shape": [len(train), height, width, channels],
            "test_shape": [len(test), height, width, channels],
            "source_hash": hashlib.sha256(b"".join(digests)).hexdigest()[:16],
            "decode_seconds": round(seconds, 3),
            "images_per_second": round((len(train) + len(test)) / max(seconds, 1e-9), 1),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        fileio.write_json(folder / "meta.json", meta)
    finally:
        reporter.finish(DECODE_TASK)
        for tmp in temporary:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    cached = _open_cached(folder, key)
    if cached is None:
        raise DataError(f"{folder}: the image cache could not be read back after writing it")
    cached.decoded = True
    return cached
