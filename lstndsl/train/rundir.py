"""Who may write into a directory: one lstndsl process at a time, and only into lstndsl's own.

What it is: `DirLock` (an advisory `fcntl.flock` on DIR/lstndsl.lock, held for a whole run or
sweep; the file names the holder's pid while it is held, and the OS drops the lock when the
process dies, so a kill -9 never leaves a stale one), `inspect` (what a directory holds: nothing,
an lstndsl run, an lstndsl sweep, or someone else's files), `claim` (the run directory of a
config, checked and locked: rank 0 calls it through `inputs.resolve_out`), `release_claims`
(the loop's `finally`), `claim_sweep`, `probe` (the CLI's quick look before torch is imported)
and `place_error` (an OSError at a path as an exit-2 message).

The lock file is also the marker: it is the first thing lstndsl writes into a directory, so a
directory holding it (or, from before the marker, a config.json) is an lstndsl run. A run that
writes nothing else (it failed before its first file) takes its lock file, and the directory if
it made it, away again. What it is not: the checks of a resume (resume.py) or the run's files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lstndsl.errors import UsageError
from lstndsl.train.config import TrainConfig

#: the lock file, and the marker of a directory lstndsl made
LOCK = "lstndsl.lock"
#: a run directory's files from before the marker existed, and a sweep's
LEGACY_RUN, LEGACY_SWEEP = ("config.json",), ("results.json",)
LAST = "last.pt"


def place_error(path: Path, exc: OSError, doing: str = "write") -> UsageError:
    """`cannot write runs/x/last.pt: No space left on device` (exit 2)."""
    reason = exc.strerror or str(exc)
    return UsageError(f"cannot {doing} {path}: {reason}")


@dataclass
class DirLock:
    """An exclusive, non-blocking flock on DIRECTORY/lstndsl.lock; `kind` is "run" or "sweep"."""

    directory: Path
    kind: str
    fd: int | None = None
    made_dir: bool = False
    made_file: bool = False
    #: the directory's entries (names, sizes, mtimes) when the lock was taken
    before: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.directory / LOCK

    def acquire(self) -> DirLock:
        """Take the lock, or raise UsageError naming the directory and the holder's pid."""
        self.made_dir = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise place_error(self.directory, exc, "create") from None
        while True:
            existed = self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                self._undo_dir()
                raise place_error(self.path, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise place_error(self.path, exc, "lock") from None
                raise UsageError(self.busy_message(holder)) from None
            if _same_file(fd, self.path):  # not a file its last holder had just removed
                break
            os.close(fd)
        self.fd, self.made_file = fd, not existed
        self.before = snapshot(self.directory)
        try:
            self._write(os.getpid())
        except OSError as exc:
            self.release()
            raise place_error(self.path, exc) from None
        return self

    def busy_message(self, holder: int | None) -> str:
        who = f"pid {holder}" if holder else "a process whose pid it has not written yet"
        one = "one run per directory" if self.kind == "run" else "one sweep per directory"
        return (
            f"{self.directory} is in use by another lstndsl process ({who}): {one}; wait for "
            "it to finish, or choose another --out"
        )

    def _write(self, pid: int | None) -> None:
        assert self.fd is not None
        data = (json.dumps({"kind": self.kind, "pid": pid}) + "\n").encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        """Drop the lock; a directory the holder left as it found it loses the lock file again
        (and itself, if the holder made it)."""
        if self.fd is None:
            return
        try:
            if self.made_file and snapshot(self.directory) == self.before:
                self.path.unlink()
                self._undo_dir()
            else:
                self._write(None)
        except OSError:
            pass  # a full or vanished disk: the OS drops the lock with the descriptor anyway
        finally:
            os.close(self.fd)
            self.fd = None

    def _undo_dir(self) -> None:
        if self.made_dir:
            with contextlib.suppress(OSError):
                self.directory.rmdir()


def _holder(fd: int) -> int | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid = data.get("pid") if isinstance(data, dict) else None
        return pid if isinstance(pid, int) else None
    except (OSError, ValueError):
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """{name: (size, mtime_ns)} of the directory's entries, the lock file left out."""
    found: dict[str, tuple[int, int]] = {}
    try:
        with os.scandir(directory) as entries:
            for e in entries:
                if e.name != LOCK:
                    st = e.stat(follow_symlinks=False)
                    found[e.name] = (st.st_size, st.st_mtime_ns)
    except OSError:
        pass
    return found


# --- what a directory holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class Holding:
    """What `inspect` found: "absent", "empty", "run", "sweep" or "foreign" (someone else's)."""

    kind: str
    entries: tuple[str, ...] = ()


def inspect(directory: Path) -> Holding:
    if not directory.exists():
        return Holding("absent")
    if not directory.is_dir():
        raise UsageError(f"--out {directory} is a file, not a directory")
    try:
        entries = tuple(sorted(os.listdir(directory)))
    except OSError as exc:
        raise place_error(directory, exc, "read") from None
    if not entries:
        return Holding("empty")
    if LOCK in entries:
        return Holding(_marked_kind(directory / LOCK), entries)
    if any(name in entries for name in LEGACY_RUN):
        return Holding("run", entries)
    if any(name in entries for name in LEGACY_SWEEP) or any(
        n.startswith("split-s") and n.endswith(".json") for n in entries
    ):
        return Holding("sweep", entries)
    return Holding("foreign", entries)


def _marked_kind(path: Path) -> str:
    try:
        kind = json.loads(path.read_text(encoding="utf-8") or "{}").get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    return kind if kind in ("run", "sweep") else "run"


def listing(directory: Path, entries: tuple[str, ...], limit: int = 8) -> str:
    """`a.txt, data/, notes.md` (and N more)."""
    names = [n + "/" if (directory / n).is_dir() else n for n in entries[:limit]]
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(names) + more


def foreign_error(directory: Path, holding: Holding, what: str = "run") -> UsageError:
    return UsageError(
        f"{directory} is not empty and holds no lstndsl {what}: it holds "
        f"{listing(directory, holding.entries)}; lstndsl writes only into a new or empty "
        f"directory or one of its own {what}s, and leaves this one untouched: choose another --out"
    )


# --- claiming a run directory ------------------------------------------------------------------

#: the locks `claim` took in this process (released by `release_claims`)
_claims: list[DirLock] = []
#: what the last claims have to tell the user
_notes: list[str] = []


def claim(config: TrainConfig) -> Path:
    """The config's run directory, checked and locked for this process (see the module doc)."""
    lock = _claim_named(Path(config.out), config) if config.out else _claim_default(config)
    _claims.append(lock)
    return lock.directory


def claim_notes() -> list[str]:
    """What the claims so far have to say (e.g. a run started again from scratch); once."""
    notes = list(_notes)
    _notes.clear()
    return notes


def release_claims() -> None:
    while _claims:
        _claims.pop().release()


def _check_place(out: Path, config: TrainConfig, holding: Holding) -> None:
    if holding.kind == "foreign":
        raise foreign_error(out, holding)
    if holding.kind == "sweep":
        raise UsageError(
            f"{out} is a sweep directory (it holds {listing(out, holding.entries)}), not a "
            "run's: give the run a directory of its own"
        )
    _not_inside_inputs(out, config)


def _claim_named(out: Path, config: TrainConfig) -> DirLock:
    holding = inspect(out)
    _check_place(out, config, holding)
    lock = DirLock(out, "run").acquire()
    try:
        has_last = (out / LAST).exists()
        if config.resume and not has_last:
            hint = (
                "its run never reached a checkpoint: run the same command without --resume to "
                "start it again from scratch"
                if holding.kind == "run"
                else "there is nothing to resume"
            )
            raise UsageError(f"--resume: {out} holds no {LAST}; {hint}")
        if not config.resume and has_last:
            raise UsageError(
                f"{out} already holds a run: add --resume to continue it, or choose another --out"
            )
        if not config.resume and holding.kind == "run" and set(holding.entries) - {LOCK}:
            _notes.append(
                f"{out} holds a run that never reached a checkpoint: starting it again from scratch"
            )
    except UsageError:
        lock.release()
        raise
    return lock


def _claim_default(config: TrainConfig) -> DirLock:
    base = config.default_out()
    if config.resume:
        if not (base / LAST).exists():
            raise UsageError(f"--resume: {base} holds no {LAST}; give the run's --out DIR")
        return _claim_named(base, config)
    out, k = base, 1
    while True:
        if inspect(out).kind in ("absent", "empty"):
            _not_inside_inputs(out, config)
            try:
                return DirLock(out, "run").acquire()
            except UsageError:
                if (out / LOCK).exists():  # taken a moment ago by another run: the next name
                    pass
                else:
                    raise
        k += 1
        out = base.with_name(f"{base.name}-{k}")


def _not_inside_inputs(out: Path, config: TrainConfig) -> None:
    """No run directory inside (or around) the dataset it reads: its files would become data."""
    kind, _, root = config.dataset.partition(":")
    if not root:
        return
    data, place = Path(root).expanduser().resolve(), out.resolve()
    if place == data or data in place.parents or place in data.parents:
        raise UsageError(
            f"--out {out} and the dataset {kind}:{root} overlap: the run would write into its "
            "own input; choose an --out outside the data"
        )


def probe(out: Path) -> None:
    """Raise at once if another process holds OUT's lock (the CLI, before torch loads)."""
    path = out / LOCK
    if not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        raise UsageError(DirLock(out, _marked_kind(path)).busy_message(_holder(fd))) from None
    finally:
        os.close(fd)


# --- sweeps --------------------------------------------------------------------------------------


def claim_sweep(out: Path) -> DirLock:
    """The sweep directory, checked and locked; the caller releases it."""
    holding = inspect(out)
    if holding.kind == "foreign":
        raise foreign_error(out, holding, "sweep")
    if holding.kind == "run":
        raise UsageError(f"{out} holds a training run, not a sweep: choose another --out")
    return DirLock(out, "sweep").acquire()
