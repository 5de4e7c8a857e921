"""One trainer per model: an OS file lock that dies with its process.

Two `kit train` runs of the same recipe on one store would write the same fold files; the
second one therefore refuses (or, with wait=True, waits) while the first holds the lock. The
lock is an flock/LockFileEx on a small file, so a killed process (even by SIGKILL) releases it:
there is never a stale lock to delete by hand.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

from .errors import StoreError
from .fileio import write_error

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(f, wait: bool) -> bool:
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
else:
    import fcntl

    def _try_lock(f, wait: bool) -> bool:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False


def holder(path: Path) -> str | None:
    """Who holds the lock on `path` now ('kit pid 123 since ...'), or None when no process does.

    Only reads: the lock file is not created, and a free lock is released at once."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        if _try_lock(f, wait=False):
            return None  # closing the file releases the lock
        return f.read().strip() or "another process"


@contextlib.contextmanager
def exclusive(path: Path, what: str, wait: bool = False, where: str = ""):
    """Hold an exclusive lock on `path` for the block; StoreError if another process holds it.

    `where`: said after the holder's pid in the lock file (' on HOST', for a job that may run on any node)."""
    path = Path(path)
    try:  # the store's first write: a read-only store or a full disk fails here, in one line
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+", encoding="utf-8")
    except OSError as exc:
        raise write_error(path, exc) from None
    with f:
        if not _try_lock(f, wait):
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise StoreError(f"{path}: {what} is in use by {holder}; wait for it to finish "
                             f"(or rerun with --wait), or stop it: a stopped run resumes where it left off")
        f.seek(0)
        f.truncate()
        f.write(f"kit pid {os.getpid()}{where} since {dt.datetime.now().isoformat(timespec='seconds')}")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
