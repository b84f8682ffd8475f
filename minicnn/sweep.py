"""python -m minicnn.sweep: a grid of independent training runs, each a task on Dask distributed.

    python -m minicnn.sweep --lr 0.1,0.01 --filters 8,16,32 --seeds 0,1,2 --epochs 3
    python -m minicnn.sweep --scheduler tcp://HOST:8786 ...   # an existing Dask cluster
    DASK_SCHEDULER_ADDRESS=tcp://HOST:8786 python -m minicnn.sweep ...

Every point of learning rate x filters x batch size x seed x backend trains the
lab model (plain SGD) for --epochs and is evaluated on the test set.  Finished
points are kept one file each in <out>/points/ (written atomically by this
process as results arrive), so a re-run computes only what is missing; the
sweep ends with a table (mean and spread over the seeds), sweep.csv,
sweep.json and sweep.png.  benchmarks/learning_rate.py and
benchmarks/runtime.py run their trials through the same machinery.

Where the trials run (printed at the start):
  - default: a local cluster on this machine (a Dask SpecCluster, the building
    block of LocalCluster, so that each worker can be given its own cores and
    GPU).  Every trial runs --threads shard threads on cores of its own: the
    cluster has cores // --threads workers, each with one task slot, the
    resource ``cores=--threads`` and its own block of cores (the trial pins
    itself to them).  With --backend cupy: one worker per visible GPU
    (CUDA_VISIBLE_DEVICES narrowed to it, resource ``GPU=1``).
  - --scheduler ADDRESS (or DASK_SCHEDULER_ADDRESS): any running Dask cluster
    (dask scheduler / dask worker, dask-jobqueue, Kubernetes); see
    docs/distributed.md.  The workers need minicnn and the data.

A worker that dies mid-trial loses only that trial: Dask runs it again
elsewhere (up to ``distributed.scheduler.allowed-failures`` times).  A trial
gives the same numbers wherever it runs (to float32 rounding: a freshly
compiled Numba kernel and its cached copy may order a sum differently): it
depends on its seed and its thread count (recorded with the points), not on
its placement.
"""
import contextlib
import functools
import json
import math
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from . import distributed
from .cli_helpers import (ArgumentParser, add_data_flags, fail, number_list, positive_int,
                          resolve_backend)

PROG = "python -m minicnn.sweep"
CONNECT_TIMEOUT = 5          # seconds to reach an existing scheduler
GPU_BACKENDS = ("cupy",)
COLUMNS = ("lr", "filters", "batch_size", "seed", "backend", "val_loss", "val_accuracy",
           "test_accuracy", "test_error", "seconds", "parameters", "worker")


# -- one trial: what a task runs on a worker ------------------------------------------
def trial(lr=0.1, filters=16, batch_size=50, seed=0, backend="numba", epochs=10, threads=1,
          dataset="mnist", data_dir=None, train_limit=None, test=True):
    """The description of one training run (a dict: it travels to the worker)."""
    return dict(lr=lr, filters=filters, batch_size=batch_size, seed=seed, backend=backend,
                epochs=epochs, threads=threads, dataset=dataset, data_dir=data_dir,
                train_limit=train_limit, test=test)


@functools.lru_cache(maxsize=2)
def _dataset(name, data_dir, train_limit):
    """Each worker process reads the data once (from its own data root) and keeps it."""
    from .data import load_dataset
    return load_dataset(name, data_dir, progress=False, train_limit=train_limit)


def _where():
    """Pin this worker to the cores its cluster gave it (MINICNN_CORES); say where we are."""
    cores = os.environ.get("MINICNN_CORES")
    if cores:
        distributed.pin_to_cores(int(c) for c in cores.split(","))
    try:
        from distributed import get_worker
        name = str(get_worker().name)
    except (ImportError, ValueError):
        name = "this process"
    import socket
    own = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {"worker": name, "host": socket.gethostname(), "pid": os.getpid(), "cores": own,
            "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _warm_up(spec, data, threads):
    """Two steps of a throwaway model like the trial's: kernel compilation (or the disk cache's
    loading), BLAS start-up and first-touch costs are paid before the trial's clock starts, so
    the first point a process times is not charged for them."""
    from . import SGD, lab_model
    model = lab_model(spec["filters"], backend=spec["backend"], seed=spec["seed"],
                      threads=threads)
    b, n = model.backend, 2 * spec["batch_size"]
    x, y = b.asarray(data.train.x[:n], dtype=model.dtype), b.asarray(data.train.y[:n])
    for start in (0, spec["batch_size"]):
        model.train_step(x[start:start + spec["batch_size"]], y[start:start + spec["batch_size"]],
                         SGD(spec["lr"]))
    b.synchronize()


def run_trial(spec):
    """Train the lab model as ``spec`` (see ``trial``) says; returns a JSON-ready dict: every
    epoch's EpochStats, ``seconds`` (training steps only, the device synchronised),
    ``with_validation_seconds``, ``parameters``, ``images``, the test scores where asked,
    ``diverged`` (None or why) and ``placement``."""
    import numpy as np
    from . import SGD, configure_threads, lab_model
    from .trainer import NonFiniteLoss, fit
    placement = _where()
    threads = configure_threads(spec["threads"])
    data = _dataset(spec["dataset"], spec["data_dir"], spec["train_limit"])
    _warm_up(spec, data, threads)
    model = lab_model(spec["filters"], backend=spec["backend"], seed=spec["seed"],
                      threads=threads)
    try:
        history = fit(model, SGD(spec["lr"]), data, spec["epochs"], spec["batch_size"],
                      spec["seed"])
        diverged = None
    except NonFiniteLoss as exc:
        history, diverged = [], str(exc)
    result = {"epochs": [h._asdict() for h in history], "diverged": diverged,
              "parameters": model.num_params(), "images": len(data.train.y),
              "seconds": sum(h.train_seconds for h in history),
              "with_validation_seconds": history[-1].elapsed if history else None,
              "placement": placement}
    if spec["test"] and not diverged:
        with np.errstate(over="ignore", invalid="ignore"):
            result["test_loss"], result["test_accuracy"] = model.evaluate(data.test.x,
                                                                          data.test.y)
    return result


# -- finished points -----------------------------------------------------------------
class Points:
    """Finished result points kept as small JSON files, so an interrupted sweep resumes.

    A point is reused only when it was computed with the same settings.
    """

    def __init__(self, out, settings, force=False):
        self.dir = Path(out) / "points"
        self.settings, self.force = settings, force

    def _path(self, key):
        return self.dir / f"{key}.json"

    def get(self, key):
        path = self._path(key)
        if self.force or not path.exists():
            return None
        try:
            point = json.loads(path.read_text())
        except ValueError:
            return None
        return point["result"] if point.get("settings") == self.settings else None

    def put(self, key, result):
        from .report import write_json
        write_json(self._path(key), {"settings": self.settings, "result": result})
        return result


# -- the cluster -------------------------------------------------------------------------
def add_cluster_flags(p, threads_default=1, threads_help=None):
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   default=os.environ.get("DASK_SCHEDULER_ADDRESS"),
                   help="send the trials to this running Dask scheduler (default: "
                        "$DASK_SCHEDULER_ADDRESS, else a local cluster on this machine)")
    p.add_argument("--workers", type=positive_int,
                   help="workers of the local cluster (default: cores // --threads)")
    p.add_argument("--threads", type=positive_int, default=threads_default,
                   help=threads_help or "threads (and cores) of each trial (default "
                   f"{threads_default}: one trial per core)")


def _cores():
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        list(range(os.cpu_count() or 1))


def _span(cores):
    cores = sorted(cores)
    if cores and cores == list(range(cores[0], cores[-1] + 1)) and len(cores) > 1:
        return f"cores {cores[0]}-{cores[-1]}"
    return ("core " if len(cores) == 1 else "cores ") + ",".join(map(str, cores))


class Cluster:
    """A Dask client and the rule that places trials: a local cluster sized to this machine,
    or an existing one.  ``threads`` is each CPU trial's thread count (None: a whole worker's
    cores); ``timing``: CPU trials must not share cores (a ``cores`` resource each);
    ``cpu``/``gpu``: which kinds of trial will come.  ``describe`` says how trials are placed."""

    def __init__(self, prog, scheduler=None, workers=None, threads=1, cpu=True, gpu=False,
                 timing=False):
        import logging
        logging.getLogger("distributed").setLevel(logging.ERROR)
        self.prog, self.timing, self.cluster = prog, timing, None
        self.cpu_resources = self.gpu_resources = None
        if scheduler:
            self._connect(scheduler, threads, cpu, gpu)
        else:
            self._local(workers, threads, cpu, gpu)

    def _local(self, workers, threads, cpu, gpu):
        import logging
        from distributed import Client, Nanny, Scheduler, SpecCluster
        cores = _cores()
        gpus = (distributed.visible_gpus() or [None]) if gpu else []
        # A GPU trial drives its device from one core: keep one core per GPU worker for it.
        reserved = cores[:len(gpus)] if cpu and gpu and len(cores) > len(gpus) else []
        free = cores[len(reserved):]
        self.threads = threads = threads or len(free)
        n = workers or max(1, len(free) // threads)
        pinned = n * threads <= len(free)
        if cpu and self.timing and not pinned:
            fail(self.prog, f"timing trials need cores of their own: {n} worker(s) x --threads "
                            f"{threads} is more than the {len(free)} core(s) here")
        specs, lines = {}, []
        options = {"nthreads": 1, "host": "127.0.0.1", "dashboard": False,
                   "dashboard_address": None, "silence_logs": logging.ERROR}
        if cpu:
            for i in range(n):
                own = free[i * threads:(i + 1) * threads] if pinned else []
                env = {"MINICNN_CORES": ",".join(map(str, own))} if own else {}
                specs[f"cpu-{i}"] = {"cls": Nanny, "options": dict(
                    options, name=f"cpu-{i}", resources={"cores": threads}, env=env)}
            self.cpu_resources = {"cores": threads}
            lines.append(f"{n} CPU worker(s), one trial at a time each, {threads} thread(s) "
                         "per trial" + (f" on {threads} core(s) of its own" if pinned else
                                        f" (workers share the {len(free)} cores)"))
        for i, g in enumerate(gpus):
            env = {} if g is None else {"CUDA_VISIBLE_DEVICES": g}
            if reserved:
                env["MINICNN_CORES"] = str(reserved[i])
            specs[f"gpu-{i}"] = {"cls": Nanny, "options": dict(
                options, name=f"gpu-{i}", resources={"GPU": 1}, env=env)}
        if gpus:
            self.gpu_resources = {"GPU": 1}
            lines.append(f"{len(gpus)} GPU worker(s), one GPU each "
                         f"({'CUDA_VISIBLE_DEVICES=' + ','.join(gpus) if gpus[0] else 'GPU 0'})"
                         + (f", on {_span(reserved)} kept for them" if reserved else ""))
        self.cluster = SpecCluster(
            workers=specs, silence_logs=logging.ERROR,
            scheduler={"cls": Scheduler, "options": {
                "host": "127.0.0.1", "protocol": "tcp://", "dashboard": False,
                "dashboard_address": None}})
        self.client = Client(self.cluster)
        self.describe = (f"local Dask cluster, {len(cores)} core(s) here: " + "; ".join(lines))
        if cpu and self.timing:
            self.describe += (f"; a timing trial takes cores={threads}, so no two share a core: "
                              + ("one at a time" if n == 1 else f"at most {n} at once"))

    def _connect(self, address, threads, cpu, gpu):
        from distributed import Client
        try:
            _probe(address)                # a refused or unknown address fails at once
            self.client = Client(address, timeout=f"{CONNECT_TIMEOUT}s")
        except Exception as exc:           # OSError, TimeoutError, ValueError (bad address)
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            fail(self.prog, f"cannot reach the Dask scheduler at {address} within "
                            f"{CONNECT_TIMEOUT} s ({why}); start one (dask scheduler, see "
                            "docs/distributed.md) or leave --scheduler out to run here")
        info = self.client.scheduler_info()["workers"].values()
        offered = [w.get("resources", {}) for w in info]
        cores = [r["cores"] for r in offered if "cores" in r]
        self.threads = threads or (int(max(cores)) if cores else None)
        if cpu and self.timing:
            if self.threads is None:
                fail(self.prog, "give --threads: no worker offers a 'cores' resource yet")
            if offered and not any(c >= self.threads for c in cores):
                fail(self.prog, f"no worker of {address} offers cores={self.threads}: timing "
                                "trials need cores of their own; start workers with "
                                f"dask worker {address} --nthreads 1 --resources "
                                f"cores={self.threads}")
        if cpu and (cores or self.timing):
            self.cpu_resources = {"cores": self.threads}
        if gpu and any("GPU" in r for r in offered):
            self.gpu_resources = {"GPU": 1}
        self.threads = self.threads or 1
        slots = sum(w.get("nthreads", 0) for w in info)
        self.describe = (f"Dask cluster at {address}: {len(offered)} worker(s), {slots} task "
                         f"slot(s)" + ("" if offered else " (none yet: the trials wait for "
                                                         "workers to join)"))
        if self.cpu_resources:
            self.describe += f"; each CPU trial takes cores={self.threads}"
        if cpu and self.timing:
            self.describe += ", so no two timing trials share a worker's cores"
        if self.gpu_resources:
            self.describe += "; each GPU trial takes GPU=1"

    def resources(self, spec):
        return self.gpu_resources if spec["backend"] in GPU_BACKENDS else self.cpu_resources

    def run(self, tasks, on_result, total=None, done=0):
        """Run every (key, spec, label) of ``tasks`` as a task; ``on_result(key, result)`` is
        called here as each finishes, with a progress line (done / total, ETA).  A trial that
        raises stops the sweep with one line (the finished points are kept)."""
        from distributed import as_completed
        total = total if total is not None else len(tasks)
        run_id = uuid.uuid4().hex[:6]
        futures = {}
        for key, spec, label in tasks:
            spec = dict(spec, threads=spec["threads"] or self.threads)   # None: the worker's
            future = self.client.submit(run_trial, spec, key=f"trial-{key}-{run_id}", pure=False,
                                        resources=self.resources(spec))
            futures[future] = (key, label)
        start, finished = time.perf_counter(), 0
        try:
            for future in as_completed(futures):
                key, label = futures[future]
                try:
                    result = future.result()
                except Exception as exc:
                    fail(self.prog, f"trial {label} failed: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}", 1)
                finished += 1
                on_result(key, result)
                elapsed = time.perf_counter() - start
                left = len(tasks) - finished
                eta = f"ETA {_duration(elapsed / finished * left)}" if left else "all done"
                where = result["placement"]
                print(f"[{done + finished}/{total}] {label}: {_summary(result)}, "
                      f"{result['with_validation_seconds'] or 0:.1f} s on worker {where['worker']}"
                      f" ({_span(where['cores'])}); {eta}", flush=True)
        finally:
            for future in futures:
                future.cancel()

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _probe(address):
    """Open and close a TCP connection to a tcp:// (or scheme-less) scheduler address."""
    import socket
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected tcp://HOST:PORT, got {address!r}")
    socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def _summary(result):
    if result["diverged"]:
        return "diverged"
    last = result["epochs"][-1]
    text = f"val_acc {100 * last['val_accuracy']:.2f}%"
    if "test_accuracy" in result:
        text += f" test_err {100 * (1 - result['test_accuracy']):.2f}%"
    return text


def backend_name(prog, name, remote):
    """A concrete backend name for the trials: checked here, except for a named backend
    that cannot run here while the trials go to another machine's workers."""
    from .backend import backend_names
    if name != "auto" and name not in backend_names():
        fail(prog, f"unknown backend {name!r}; choose from auto, {', '.join(backend_names())}")
    if remote and name != "auto":
        return name
    return resolve_backend(prog, name).name


@contextlib.contextmanager
def resumable(prog, points, what="points"):
    """Ctrl-C becomes one line saying that the finished ``what`` are kept (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        fail(prog, f"interrupted; finished {what} are kept in {points.dir}, run again to resume",
             130)


def run_points(cluster, points, tasks, on_new=None, reuse_note="reusing the finished point"):
    """{key: result} for every (key, spec, label): finished points reused from ``points``,
    the others run on ``cluster`` and stored as they arrive (``on_new(key, result)`` may
    reshape a result before it is stored).  ``cluster``: a Cluster, or a function of the
    specs still to run that makes one; it is then called only if some are, and the cluster
    it makes is closed here."""
    results, todo = {}, []
    for key, spec, label in tasks:
        point = points.get(key)
        if point is not None:
            results[key] = point
            print(f"{label}: {reuse_note} in {points.dir}")
        else:
            todo.append((key, spec, label))
    if todo:
        own = not isinstance(cluster, Cluster)
        cluster = cluster([spec for _, spec, _ in todo]) if own else cluster
        try:
            print(f"{len(todo)} of {len(tasks)} trial(s) to run; {cluster.describe}", flush=True)

            def store(key, result):
                results[key] = points.put(key, on_new(key, result) if on_new else result)
            cluster.run(todo, store, total=len(tasks), done=len(tasks) - len(todo))
        finally:
            if own:
                cluster.close()
    return results


# -- the command line --------------------------------------------------------------------
def _seed_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = None
    if not values or any(v < 0 for v in values):
        import argparse
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds "
                                         "(integers >= 0)")
    return values


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--lr", type=number_list(float), default=[0.1],
                   help="comma-separated learning rates (default 0.1)")
    p.add_argument("--filters", type=number_list(int), default=[16],
                   help="comma-separated filter counts (default 16)")
    p.add_argument("--batch-size", type=number_list(int), default=[50],
                   help="comma-separated batch sizes (default 50)")
    p.add_argument("--seeds", type=_seed_list, default=[0],
                   help="comma-separated seeds (default 0)")
    p.add_argument("--backend", default="auto",
                   help="comma-separated backends (default auto: the fastest here)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--train-limit", type=positive_int, metavar="N",
                   help="train on the first N training images only")
    p.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    p.add_argument("--force", action="store_true",
                   help="recompute points that an earlier run already finished")
    add_data_flags(p)
    add_cluster_flags(p)
    args = p.parse_args(argv)
    args.backend = [b for b in args.backend.split(",") if b.strip()]
    if not args.backend:
        p.error("--backend: give at least one backend")
    return args


def _grid(args):
    for backend in args.backends:
        for batch in args.batch_size:
            for filters in args.filters:
                for lr in args.lr:
                    for seed in args.seeds:
                        key = f"lr{lr:g}_f{filters}_b{batch}_s{seed}_{backend}"
                        label = (f"lr {lr:g} filters {filters} batch {batch} seed {seed} "
                                 f"{backend}")
                        yield key, trial(lr, filters, batch, seed, backend, args.epochs,
                                         args.threads, args.dataset, args.data_dir,
                                         args.train_limit), label


def _row(spec, result):
    last = result["epochs"][-1] if result["epochs"] else {}
    test = result.get("test_accuracy")
    return {**{k: spec[k] for k in ("lr", "filters", "batch_size", "seed", "backend")},
            "val_loss": last.get("val_loss"), "val_accuracy": last.get("val_accuracy"),
            "test_accuracy": test, "test_error": None if test is None else 1 - test,
            "seconds": result["seconds"], "parameters": result["parameters"],
            "worker": result["placement"]["worker"], "diverged": result["diverged"]}


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _plot(groups, path):
    from .report import finish_figure, new_figure
    fig, ax = new_figure(figsize=(7, 4.5))
    series = {}
    for (lr, filters, batch, backend), rows in groups.items():
        mean, std = _mean_std([r["test_error"] for r in rows])
        if mean is not None:
            series.setdefault((filters, batch, backend), []).append((lr, 100 * mean, 100 * std))
    for (filters, batch, backend), pts in series.items():
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                    fmt="o-", capsize=3, label=f"{filters} filters, batch {batch}, {backend}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="test error (%), mean ± std over seeds",
           title="Lab CNN sweep")
    finish_figure(fig, [ax], path)


def main(argv=None):
    args = parse_args(argv)
    from .report import write_csv, write_json
    from .sysinfo import system_info
    args.backends = list(dict.fromkeys(backend_name(PROG, b, bool(args.scheduler))
                                       for b in args.backend))
    if not args.scheduler:          # the data are read here too: a problem is one line now
        from .data import DataError, load_dataset
        try:
            load_dataset(args.dataset, args.data_dir, progress=False, train_limit=args.train_limit)
        except (DataError, OSError, ValueError) as exc:
            fail(PROG, f"cannot read {args.dataset}: {exc}")
    tasks = list(_grid(args))
    settings = {k: getattr(args, k) for k in ("epochs", "train_limit", "dataset", "threads")}
    points = Points(args.out, settings, args.force)
    gpu = any(b in GPU_BACKENDS for b in args.backends)
    cpu = any(b not in GPU_BACKENDS for b in args.backends)
    print(f"sweep: {len(tasks)} trial(s) = {len(args.lr)} lr x {len(args.filters)} filters x "
          f"{len(args.batch_size)} batch x {len(args.seeds)} seed x {len(args.backends)} backend, "
          f"{args.epochs} epoch(s) each, {args.threads} thread(s) per trial", flush=True)
    with resumable(PROG, points):
        results = run_points(lambda todo: Cluster(PROG, args.scheduler, args.workers,
                                                  args.threads, cpu, gpu), points, tasks)
    rows = [_row(spec, results[key]) for key, spec, _ in tasks]
    out = Path(args.out)
    write_csv(out / "sweep.csv", rows, COLUMNS)
    write_json(out / "sweep.json", {"settings": settings, "trials": [
        dict(spec, key=key, result=results[key]) for key, spec, _ in tasks],
        "system": system_info()})
    groups = {}
    for r in rows:
        groups.setdefault((r["lr"], r["filters"], r["batch_size"], r["backend"]), []).append(r)
    _plot(groups, out / "sweep.png")
    print(f"\n{'lr':>8s} {'filters':>7s} {'batch':>5s} {'backend':8s} {'seeds':>5s} "
          f"{'val acc %':>14s} {'test err %':>14s} {'seconds':>8s}")
    for (lr, filters, batch, backend), group in groups.items():
        val, val_sd = _mean_std([r["val_accuracy"] for r in group])
        err, err_sd = _mean_std([r["test_error"] for r in group])
        secs, _ = _mean_std([r["seconds"] for r in group])
        cell = (lambda m, s: f"{100 * m:6.2f} ± {100 * s:5.2f}" if m is not None
                else f"{'diverged':>14s}")
        print(f"{lr:8g} {filters:7d} {batch:5d} {backend:8s} {len(group):5d} "
              f"{cell(val, val_sd):>14s} {cell(err, err_sd):>14s} {secs or math.nan:8.1f}")
    print(f"wrote {out / 'sweep.png'}, sweep.csv, sweep.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
