"""A run's output folder (minicnn/results/run_dir.py and train's use of it): claimed with an
O_EXCL lock naming its pid and host, so a second claim while the first holds it is refused
and a dead run's lock is taken over; released at the end, the folder removed only where the
run made it and finished no epoch; fresh numbered folders never shared.  Through the command
line: two runs on one --out at once (the second refused before it trains), a run failing on
bad data (no folder left), SIGTERM (exit 143, the finished epochs kept), a full disk (one
line naming the folder and the space, the first epoch's files kept)."""
import errno
import re
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, call_main, fake_mnist, needs_mnist, run_module
from minicnn.results.run_dir import LOCK, OutputError, claim_output_dir, fresh_run_dir

HOST = socket.gethostname()


def lock_of(folder):
    return json.loads((Path(folder) / LOCK).read_text())


def write_lock(folder, pid, host=HOST):
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / LOCK).write_text(json.dumps({"pid": pid, "host": host}))


def dead_pid():
    """The pid of a process that has finished (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def sleeper():
    """A live process that is not this one."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


# -- claim_output_dir ---------------------------------------------------------------------
def test_a_claim_writes_a_lock_naming_this_process(tmp_path):
    run = claim_output_dir(tmp_path / "out")
    assert run.path == tmp_path / "out" and run.made
    assert lock_of(run.path) == {"pid": os.getpid(), "host": HOST}


def test_a_second_claim_while_the_first_holds_it_is_refused(tmp_path):
    first = claim_output_dir(tmp_path / "out")
    with pytest.raises(OutputError, match=rf"--out {tmp_path / 'out'} is in use by another run "
                                          rf"\(pid {os.getpid()} on {HOST}\)"):
        claim_output_dir(tmp_path / "out")
    assert lock_of(first.path)["pid"] == os.getpid()
    first.release(1)
    claim_output_dir(tmp_path / "out").release(1)          # free again once released


def test_a_lock_held_by_another_live_process_is_refused_naming_it(tmp_path, sleeper):
    write_lock(tmp_path / "out", sleeper.pid)
    with pytest.raises(OutputError, match=rf"in use by another run \(pid {sleeper.pid} on "):
        claim_output_dir(tmp_path / "out")
    assert lock_of(tmp_path / "out")["pid"] == sleeper.pid      # not touched


def test_a_lock_of_another_machine_is_respected(tmp_path):
    """Its pid cannot be checked from here: the run may be alive."""
    write_lock(tmp_path / "out", dead_pid(), host=HOST + "-elsewhere")
    with pytest.raises(OutputError, match=rf"on {HOST}-elsewhere\)"):
        claim_output_dir(tmp_path / "out")


def test_a_dead_runs_lock_is_taken_over(tmp_path):
    pid = dead_pid()
    write_lock(tmp_path / "out", pid)
    (tmp_path / "out" / "notes.txt").write_text("kept")
    run = claim_output_dir(tmp_path / "out")
    assert lock_of(run.path) == {"pid": os.getpid(), "host": HOST}
    assert not run.made                               # the folder was there before
    run.release(0)
    assert (tmp_path / "out" / "notes.txt").read_text() == "kept"
    assert not (tmp_path / "out" / LOCK).exists()


def test_release_removes_the_lock_and_only_a_folder_it_made_for_nothing(tmp_path):
    made = claim_output_dir(tmp_path / "a")
    made.release(0)
    assert not (tmp_path / "a").exists()             # made here, no epoch finished
    kept = claim_output_dir(tmp_path / "b")
    (tmp_path / "b" / "metrics.json").write_text("{}")
    kept.release(1)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["metrics.json"]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mine.txt").write_text("x")
    theirs = claim_output_dir(tmp_path / "c")        # the user's folder: never removed
    theirs.release(0)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["mine.txt"]


def test_a_nested_new_folder_is_made_and_removed(tmp_path):
    run = claim_output_dir(tmp_path / "x" / "y")
    assert run.path.is_dir()
    run.release(0)
    assert not (tmp_path / "x" / "y").exists()


# -- fresh_run_dir -----------------------------------------------------------------------------
def test_fresh_folders_are_numbered_from_the_highest(tmp_path):
    root = tmp_path / "runs"
    first, second = fresh_run_dir(root), fresh_run_dir(root)
    assert [first.path.name, second.path.name] == ["train-001", "train-002"]
    assert lock_of(first.path)["pid"] == os.getpid()
    (root / "train-041").mkdir()
    (root / "train-xyz").mkdir()
    assert fresh_run_dir(root).path.name == "train-042"
    second.release(0)                                   # made, nothing finished: removed
    assert not second.path.exists()


def test_fresh_folders_default_to_minicnn_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_RUNS", str(tmp_path / "elsewhere"))
    assert fresh_run_dir().path == tmp_path / "elsewhere" / "train-001"


def test_fresh_folders_under_a_file_are_refused(tmp_path):
    (tmp_path / "runs").write_text("a file")
    with pytest.raises(OutputError, match=r"cannot make a results folder under .*runs"):
        fresh_run_dir(tmp_path / "runs")


def test_runs_started_together_never_share_a_fresh_folder(tmp_path):
    root = tmp_path / "runs"
    code = ("import sys, time; from minicnn.results.run_dir import fresh_run_dir\n"
            "start = float(sys.argv[1])\n"
            "while time.time() < start: pass\n"
            "print(fresh_run_dir(sys.argv[2]).path.name)")
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start), str(root)],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    names = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(names) == ["train-001", "train-002", "train-003", "train-004"]


# -- through the command line --------------------------------------------------------------------
TINY = ["--arch", "conv:2:3:same,relu,pool,dense:10", "--backend", "numpy"]


def start_train(*args):
    env = dict(os.environ)
    from conftest import REAL_ROOT
    env["MINICNN_DATA"] = REAL_ROOT
    return subprocess.Popen([sys.executable, "-m", "minicnn.train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(condition, timeout=60):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@needs_mnist
def test_a_second_run_on_the_same_out_is_refused_before_it_trains(tmp_path):
    out = tmp_path / "out"
    first = start_train("--out", out, "--epochs", "500", "--train-limit", "500", *TINY)
    try:
        wait_for(lambda: (out / LOCK).exists() or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        second = run_module("minicnn.train", "--out", out, "--epochs", "1", *TINY)
        assert_one_line_error(second, rf"--out {out} is in use by another run \(pid "
                                      rf"{first.pid} on {HOST}\)")
        assert "epoch" not in second.stdout and "training on" not in second.stdout
        assert first.poll() is None                     # the first one goes on
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 143
    assert not (out / LOCK).exists()


def corrupt_mnist(root):
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(b"\x1f\x8b this is not gzip data")
    return root


@pytest.mark.parametrize("out", ["none", "new", "existing"])
def test_a_run_that_fails_on_bad_data_leaves_no_folder_it_made(tmp_path, out):
    runs = tmp_path / "runs"
    data = corrupt_mnist(tmp_path / "data")
    args = {"none": [], "new": ["--out", tmp_path / "new" / "run"],
            "existing": ["--out", tmp_path / "mine"]}[out]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    result = run_module("minicnn.train", "--data-dir", data, "--epochs", "1", *TINY, *args,
                        env={"MINICNN_RUNS": str(runs)})
    assert_one_line_error(result, r"cannot read mnist: .*corrupt or truncated gzip")
    assert not runs.exists() or list(runs.iterdir()) == []
    assert not (tmp_path / "new" / "run").exists()
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


@needs_mnist
def test_sigterm_keeps_the_finished_epochs(tmp_path):
    out = tmp_path / "out"
    run = start_train("--out", out, "--epochs", "500", "--train-limit", "500", *TINY)
    try:
        for line in run.stdout:
            if line.startswith("epoch  1/500"):
                break
        else:
            pytest.fail(f"no epoch line: {run.communicate()}")
        run.send_signal(signal.SIGTERM)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    result = subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)
    line = assert_one_line_error(result, rf"terminated \(SIGTERM\); \d+ finished epoch\(s\) kept "
                                         rf"in {out}", code=143)
    kept = int(line.split("; ")[1].split()[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert kept >= 1 and len(metrics["epochs"]) == kept
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, kept + 1))
    assert metrics["completed"] is False and "test_accuracy" not in metrics
    assert len((out / "metrics.csv").read_text().splitlines()) == kept + 1
    assert not (out / LOCK).exists()
    import minicnn
    minicnn.load(out / "model.npz")


# -- a full disk -------------------------------------------------------------------------------
def enospc(calls, fail_at, real, record=None):
    def write(path, data):
        calls.append(Path(path).name)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        if record is not None:
            record[Path(path).name] = data
        return real(path, data)
    return write


@pytest.mark.parametrize("where", ["model", "metrics.json"])
def test_a_full_disk_on_the_second_epoch_keeps_the_first(tmp_path, monkeypatch, capsys, where):
    """The write that fails: the second epoch's first (model.npz), or its last
    (metrics.json, which says what the folder holds)."""
    from minicnn import train
    from minicnn.nn import model_file
    from minicnn.results import files
    fake_mnist(tmp_path / "data", n_train=5100, n_test=10, monkeypatch=monkeypatch)
    calls, written = [], {}
    if where == "model":
        monkeypatch.setattr(model_file, "write_bytes",
                            enospc(calls, 2, model_file.write_bytes, written))
    else:                               # metrics.csv, metrics.json, then the second epoch's
        monkeypatch.setattr(files, "write_text", enospc(calls, 4, files.write_text, written))
    out = tmp_path / "out"
    result = call_main(train.main, ["--data-dir", str(tmp_path / "data"), "--epochs", "3",
                                    "--batch-size", "25", "--out", str(out), *TINY], capsys)
    assert_one_line_error(result, rf"error: no space left on the device of {out} for the "
                                  r"results \(.* MiB free, about .* MiB needed\).*; 1 finished "
                                  r"epoch\(s\) kept")
    assert "epoch  1/3" in result.stdout and "epoch  3/3" not in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1]
    assert metrics["completed"] is False
    if where == "model":               # nothing of the second epoch was written
        assert (out / "model.npz").read_bytes() == written["model.npz"]
        assert len((out / "metrics.csv").read_text().splitlines()) == 2
    assert not (out / LOCK).exists()
    assert not list(out.glob(".*.part"))


def test_a_full_disk_while_writing_the_lock_is_one_line_and_leaves_no_lock(tmp_path,
                                                                           monkeypatch, capsys):
    import types
    from minicnn import train
    from minicnn.results import run_dir

    def dump(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(run_dir, "json", types.SimpleNamespace(dump=dump, loads=json.loads))
    out = tmp_path / "out"
    out.mkdir()
    result = call_main(train.main, ["--out", str(out), "--epochs", "1", *TINY], capsys)
    assert_one_line_error(result, rf"no space left on the device of {re.escape(str(out))}")
    assert not (out / LOCK).exists()
    monkeypatch.undo()
    claim_output_dir(out).release(0)                 # the folder can be used again
