"""Writing files so that nothing half-written is ever read, and saying why a write failed.

Every file and folder the course caches or saves goes through here: :func:`replacing` and
:func:`write_text_atomically` for one file (verification markers, split manifests, trial
results, weights, refreshed notebooks), :func:`replace_folder` for a folder that must
appear whole or not at all (a trial's checkpoint of one epoch, a published bundle).
:func:`os_error` turns a low-level ``OSError`` into one that says what to do.

Used by every module that writes; no chapter calls it directly.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


def _token() -> str:
    """``<pid>-<random>``: a temporary name no other process or thread is using."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def replacing(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends without an
    error, rename the temporary over ``path``; either way, leave no temporary behind.

    A reader sees the old file or the new one, never half of one, even when two processes
    write the same file at once (each has its own temporary, ``<name>.tmp-<pid>-<random>``).
    ``suffix`` ends the temporary's name, for writers that insist on one (``np.savez``
    adds ``.npz``, Keras wants ``.weights.h5``).
    """
    tmp = path.with_name(f"{path.name}.tmp-{_token()}{suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`replacing`."""
    with replacing(path) as tmp:
        tmp.write_text(text)


def replace_folder(
    final: Path, build: Callable[[Path], None], *, on_failure: Callable[[Path], None] | None = None
) -> None:
    """Call ``build(folder)`` on a new temporary folder beside ``final``
    (``.<name>.tmp-<pid>-<random>``), then put that folder in ``final``'s place: an older
    ``final`` is moved aside (``.<name>.old-…``), the new one renamed in, the old one
    removed. If ``build`` or a rename fails, the old folder is put back, the temporary one
    removed (after ``on_failure(temporary)``, for writers that must close what they left
    open) and the error raised. Cut short at any moment, it leaves the old folder whole,
    or beside its place between the two renames (:func:`tidy_beside` puts it back), and
    only temporaries whose names start with ``.<name>.``. The caller keeps other writers
    of ``final`` out (a lock)."""
    token = _token()
    staging, old = final.with_name(f".{final.name}.tmp-{token}"), final.with_name(f".{final.name}.old-{token}")
    try:
        staging.mkdir()
        build(staging)
        if final.exists():
            final.rename(old)
        staging.rename(final)
    except BaseException:
        if old.exists() and not final.exists():
            old.rename(final)
        if on_failure is not None and staging.exists():
            on_failure(staging)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def tidy_beside(final: Path) -> None:
    """Clear what a cut-short :func:`replace_folder` of ``final`` left beside it (the caller
    keeps other writers out): remove its temporary folders, and put an old folder back
    if the new one never arrived."""
    for staging in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(staging, ignore_errors=True)
    for old in sorted(final.parent.glob(f".{final.name}.old-*")):
        if not final.exists():
            with contextlib.suppress(OSError):
                old.rename(final)
                continue
        shutil.rmtree(old, ignore_errors=True)


def reason(error: OSError) -> tuple[int | None, str]:
    """The system's error number of ``error`` and its words ("No space left on device").
    h5py gives the number only inside its message."""
    number = error.errno
    if number is None:
        found = re.search(r"errno = (\d+)", str(error))
        number = int(found.group(1)) if found else None
    if number:
        return number, os.strerror(number)
    return None, (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def os_error(error: OSError, message: str) -> OSError:
    """An ``OSError`` with ``error``'s number and a message that says what to do."""
    new = OSError(message)
    new.errno = reason(error)[0]  # only the number: with a file name or strerror set, str() would drop the message
    return new
