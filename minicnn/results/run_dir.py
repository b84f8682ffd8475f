"""The output folder of a run, checked and claimed before any work starts.

A run that trains for an hour and then cannot write its results has lost the
hour; one that silently replaces an earlier run's results has lost that run.
So ``claim_output_dir`` creates the folder, proves it can write there, refuses
a folder that already holds results unless told to overwrite them, and claims
it with a lock file created exclusively (O_EXCL): a second run started on the
same folder at the same moment is refused, and a lock whose run has died is
taken over.  ``RunDir.release`` gives the folder back at the end, and removes
it where the run made it and finished no epoch (a failed start leaves nothing).
"""
import errno
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

RESULT_FILES = ("metrics.json", "metrics.csv", "learning_curve.png", "model.npz")
LOCK = ".minicnn-run.lock"


class OutputError(ValueError):
    """The output folder cannot be used; the message says why and what to do."""


def _check_folder(path):
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {path} is a file, not a folder; give a folder for the results")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"--out {path}: {parent} is a file, so no folder can be made "
                              "under it; choose another path")


def prepare_output_dir(path, overwrite=False):
    """The folder ``path``, created if needed and checked writable; raises OutputError."""
    path = Path(path).expanduser()
    _check_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise OutputError(f"--out {path} is not writable ({exc.strerror or exc}); choose a "
                          "folder you can write to") from None
    held = [name for name in RESULT_FILES if (path / name).exists()]
    if held and not overwrite:
        raise OutputError(f"--out {path} already holds results ({', '.join(held)}); add "
                          "--overwrite to replace them, or choose another folder")
    return path


def _alive(owner):
    """True where the lock's run still runs (or may: another machine's cannot be checked)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except (ProcessLookupError, KeyError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """A claimed output folder: ``path``; ``release(finished_epochs)`` at the end."""

    def __init__(self, path, made):
        self.path, self.made = path, made
        self._lock = path / LOCK

    def _take(self):
        fd = os.open(self._lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
        except OSError as exc:          # a full disk: no half-written lock may stay behind
            self._lock.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise OutputError(space_message(self.path, 4096)) from None
            raise OutputError(f"--out {self.path} cannot be claimed ({exc.strerror or exc}); "
                              "choose another folder") from None

    def claim(self):
        try:
            self._take()
            return self
        except FileExistsError:
            pass
        try:
            owner = json.loads(self._lock.read_text())
        except (OSError, ValueError):
            owner = {}
        if _alive(owner):
            raise OutputError(f"--out {self.path} is in use by another run (pid "
                              f"{owner.get('pid', '?')} on {owner.get('host', '?')}); wait for "
                              "it to finish or choose another folder")
        self._lock.unlink(missing_ok=True)        # its run died: take the folder over
        try:
            self._take()
        except FileExistsError:
            raise OutputError(f"--out {self.path} was claimed by another run just now; choose "
                              "another folder") from None
        return self

    def release(self, finished_epochs):
        """Drop the claim; remove the folder where this run made it and finished nothing."""
        self._lock.unlink(missing_ok=True)
        if self.made and not finished_epochs:
            shutil.rmtree(self.path, ignore_errors=True)


def claim_output_dir(path, overwrite=False):
    """prepare_output_dir, then the folder claimed for this run: a RunDir."""
    path = Path(path).expanduser()
    made = not path.exists()
    prepare_output_dir(path, overwrite)
    return RunDir(path, made).claim()


def fresh_run_dir(root=None):
    """A new, empty, claimed folder ``<root>/train-NNN`` (the first free number), for a run
    given no --out.  ``root``: $MINICNN_RUNS, else ``runs`` under the working folder.  mkdir
    is the claim, so two runs started together never share a folder.  Raises OutputError."""
    root = Path(root or os.environ.get("MINICNN_RUNS") or "runs").expanduser()
    number = 1 + max((int(p.name[6:]) for p in root.glob("train-*") if p.name[6:].isdigit()),
                     default=0)
    try:
        root.mkdir(parents=True, exist_ok=True)
        while True:
            path = root / f"train-{number:03d}"
            try:
                path.mkdir()
                prepare_output_dir(path)
                return RunDir(path, made=True).claim()
            except FileExistsError:
                number += 1
    except OSError as exc:
        raise OutputError(f"cannot make a results folder under {root} ({exc.strerror or exc}); "
                          "pass --out DIR with a folder you can write to") from None


def space_message(folder, needed):
    """'no space left ...' line for a full disk: the folder, the free space, what is needed."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = 0
    def size(n):
        return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"
    return (f"no space left on the device of {folder} for the results ({size(free)} free, "
            f"about {size(needed)} needed); free some space or choose another --out")
