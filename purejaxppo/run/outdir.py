"""Output folders of every command: what a folder holds, who may write it, one writer at a time
(host side).

Each command that writes a folder (`train`, `sweep`, `rlhf`, `bench`) names the kind it
writes; `check_out` refuses a folder that holds another kind, or the same kind where the
command would replace it without `--overwrite`, before anything on disk changes.
`FolderLock` is an exclusive OS file lock (`flock`) per folder, held for the whole
command: a second writer of the same folder is refused in one line. The lock file sits
next to the folder (`.<name>.lock`), so it survives the folder being renamed (a run
replaced with `--overwrite`, an RLHF run moved into place) and never changes the tree a
command was refused on; it is removed when the command ends.

`set_aside` / `put_back` / `drop_aside` let `--overwrite` keep the old folder until the new
one has started cleanly.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import os
import shutil
import sys
from pathlib import Path

from purejaxppo.run.rundir import RunDirError

# kind -> (the files or folders that mark it, in order of precedence; how to name it)
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "rlhf": (("rlhf.yaml",), "an RLHF run (purejaxppo rlhf)"),
    "sweep": (("sweep.json",), "a sweep (purejaxppo sweep)"),
    "bench": (("bench.json",), "a benchmark report (purejaxppo bench)"),
    "run": (("config.yaml", "checkpoint"), "a training run (purejaxppo train)"),
}
ASIDE = ".replaced-"  # `.<name>.replaced-<pid>`: an old folder kept until its replacement runs


def folder_kind(path: Path) -> str | None:
    """What `path` holds: a key of `KINDS`, `"other"` for any other non-empty folder, None
    for a missing or empty folder."""
    if not path.is_dir() or not any(path.iterdir()):
        return None
    for kind, (markers, _) in KINDS.items():
        if any((path / m).exists() for m in markers):
            return kind
    return "other"


def describe(kind: str) -> str:
    """`a training run (purejaxppo train)`, ... or `files that are not a purejaxppo folder`."""
    return KINDS[kind][1] if kind in KINDS else "files that are not a purejaxppo folder"


def check_out(
    path: Path, kind: str, *, overwrite: bool = False, resume: bool = False, flag: str = "--out"
) -> str | None:
    """Refuse a folder that `kind`'s command must not write into (nothing is touched).

    A missing or empty folder is always accepted. A folder of the same kind is accepted
    with `resume` (the caller checks that it is the same job) or `overwrite` (the caller
    replaces it); anything else is a `RunDirError` naming what the folder holds. Returns
    the folder's kind (None: missing or empty).
    """
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{flag} {path}: exists and is not a folder")
    found = folder_kind(path)
    if found is None or (found == kind and (resume or overwrite)):
        return found
    if found != kind:
        holder = busy_holder(path)
        if holder is not None:  # a writer is still filling it in: say so, not "other files"
            raise in_use_error(flag, path, holder)
        raise RunDirError(
            f"{flag} {path}: holds {describe(found)}, not {describe(kind)}; nothing was "
            "changed, use another folder"
        )
    hint = f", or --resume {path} to continue it" if kind == "run" else ""
    raise RunDirError(
        f"{flag} {path}: folder exists and holds {describe(kind)}; pass --overwrite to "
        f"replace it{hint}"
    )


def lock_path(path: Path) -> Path:
    """`<parent>/.<name>.lock`: the lock file of folder `path`."""
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.lock")


LOCK_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)  # flock's "another holds it"


def in_use_error(flag: str, path: Path, holder: str) -> RunDirError:
    """The one-line error for a folder another process holds (`holder`: its lock text)."""
    return RunDirError(
        f"{flag} {path}: in use by another purejaxppo process ({holder or 'unknown'}); "
        "nothing was changed, wait for it to end or use another folder"
    )


def busy_holder(path: Path) -> str | None:
    """Who holds folder `path`'s lock when another process does (the lock file's text),
    else None. Creates nothing; a lock held by this process does not count."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = os.pread(fd, 400, 0).decode(errors="replace").strip()
        if holder.startswith(f"pid {os.getpid()}:"):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in LOCK_HELD:
                return holder or "unknown"
        return None
    finally:
        os.close(fd)


class FolderLock:
    """An exclusive `flock` on folder `path`, held until `release` (or the process ends).

    Args:
      path: the folder (it need not exist yet; its parent is created).
      command: who holds it, written into the lock file for the message a second writer
        gets (e.g. `train`).
      flag: how the folder was given (`--out`, `--resume`), for messages.

    Raises `RunDirError` in one line when another process holds the lock or the lock file
    cannot be created (a read-only or missing place).
    """

    def __init__(self, path: Path, command: str, flag: str = "--out") -> None:
        self.path, self.command, self.flag = Path(path), command, flag
        self.file = lock_path(self.path)
        self._fd: int | None = None
        self._acquire()

    def _open(self) -> int:
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            if isinstance(err, FileExistsError | NotADirectoryError):
                reason = "a file stands where a folder should be"
            raise RunDirError(
                f"{self.flag} {self.path}: cannot write in {self.file.parent} ({reason})"
            ) from None

    def _acquire(self) -> None:
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.pread(fd, 400, 0).decode(errors="replace").strip()
                os.close(fd)
                if err.errno not in LOCK_HELD:
                    raise RunDirError(
                        f"{self.flag} {self.path}: cannot lock it ({err.strerror})"
                    ) from None
                raise in_use_error(self.flag, self.path, holder) from None
            # The holder before us may have removed the file after we opened it: then we
            # lock a file nobody else sees; start again on the file that is there now.
            try:
                same = os.stat(self.file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        text = f"pid {os.getpid()}: purejaxppo {self.command}, since {stamp}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.file.unlink(missing_ok=True)  # while still locked: see `_acquire`
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_writable(path: Path, flag: str = "--out") -> None:
    """`RunDirError` unless a file can be created in the existing folder `path`."""
    probe = path / f".purejaxppo-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise RunDirError(f"{flag} {path}: cannot write there ({reason})") from None


def set_aside(path: Path) -> Path:
    """Rename the folder `path` to `.<name>.replaced-<pid>` next to it; returns the new path."""
    aside = path.with_name(f".{path.name}{ASIDE}{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)
    path.rename(aside)
    return aside


def put_back(path: Path, aside: Path) -> None:
    """Undo `set_aside`: whatever is at `path` now is removed, the old folder returns."""
    shutil.rmtree(path, ignore_errors=True)
    aside.rename(path)


def drop_aside(aside: Path) -> None:
    """The replacement started cleanly: delete the old folder."""
    shutil.rmtree(aside, ignore_errors=True)


def note_leftovers(path: Path) -> None:
    """Say (stderr) where an old folder kept by an `--overwrite` that was killed lies."""
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        return
    for aside in sorted(path.parent.glob(f".{path.name}{ASIDE}*")):
        print(
            f"purejaxppo: note: {aside} holds the folder an interrupted --overwrite of "
            f"{path} replaced; delete it when it is no longer needed",
            file=sys.stderr,
            flush=True,
        )
