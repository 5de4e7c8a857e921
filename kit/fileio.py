"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything kit writes into the store or into submissions/ goes through here: the bytes go to a
temporary file in the same folder, are flushed to disk, and the file is renamed over the target
(rename is atomic on POSIX and on Windows when source and target share a volume).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import WriteError


def _umask() -> int:
    """The process's umask, read without changing it where the OS tells it (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


#: what open() gives a new file: mkstemp's temporary files are private (0600), and a renamed one stays so,
#: which would leave every submission, page and cache file unreadable to the rest of a team
NEW_FILE_MODE = 0o666 & ~_umask()


def as_if_opened(path: str | os.PathLike) -> None:
    """Give a temporary file (from mkstemp) the permissions a file written with open() would have."""
    os.chmod(path, NEW_FILE_MODE)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary sibling of `path` for writing; rename it over `path` on success.

    An OSError on the way (a full disk, no permission, a file where a folder should be) becomes
    WriteError naming `path`: the temporary file is removed and `path` is as it was."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        as_if_opened(tmp)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def write_error(path: Path, exc: OSError) -> WriteError:
    """`path` could not be written, in one line: why (the OS's words), and that the old file is whole."""
    why = exc.strerror or type(exc).__name__
    hint = "; free some space and rerun" if exc.errno == errno.ENOSPC else ""
    kept = "it was left as it was" if path.exists() else "nothing was written"
    return WriteError(f"{path}: cannot be written ({why}); {kept}{hint}")


def write_bytes(path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_npz(path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def write_csv(path, frame) -> None:
    """Write a pandas DataFrame without its index."""
    write_text(path, frame.to_csv(index=False))


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def stable_hash(obj) -> str:
    """A short hash of a JSON-able object that does not depend on dict order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def text_array(values) -> np.ndarray:
    """Values as a str array exactly as wide as its longest value: the one form ids and labels take.

    NumPy keeps the width an array was made with: row numbers made in memory are '<U21' where the
    same ids read back from a CSV are '<U2'. Equal ids must be equal arrays, byte for byte, so that
    their hashes agree whichever way they were made."""
    text = np.asarray(values, dtype=str)
    width = int(np.char.str_len(text).max()) if text.size else 0
    return text.astype(f"U{max(width, 1)}")


def array_hash(*arrays) -> str:
    """A short content hash of arrays (dtype, shape and bytes); str arrays by their text, whatever their width."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(text_array(a) if np.asarray(a).dtype.kind == "U" else a)
        if a.dtype == object:
            h.update(json.dumps(a.tolist(), default=str).encode())
        else:
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]
