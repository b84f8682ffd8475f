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
import math
import statistics
import sys
from pathlib import Path

from .cli import (ArgumentParser, add_backend_flag, add_cluster_flags, add_study_output_flags,
                  add_tensorboard_flag, add_training_flags, load_data, number_list, resumable,
                  seed_list, sweep_errors, tensorboard_folder, trial_backend)
from .sweeps.cluster import GPU_BACKENDS, Cluster
from .sweeps.points import Points, run_points
from .sweeps.trial import trial

PROG = "python -m minicnn.sweep"
COLUMNS = ("lr", "filters", "batch_size", "seed", "backend", "val_loss", "val_accuracy",
           "test_accuracy", "test_error", "seconds", "parameters", "worker")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--lr", type=number_list(float), default=[0.1],
                   help="comma-separated learning rates (default 0.1)")
    p.add_argument("--filters", type=number_list(int), default=[16],
                   help="comma-separated filter counts (default 16)")
    p.add_argument("--batch-size", type=number_list(int), default=[50],
                   help="comma-separated batch sizes (default 50)")
    p.add_argument("--seeds", type=seed_list, default=[0],
                   help="comma-separated seeds (default 0)")
    add_backend_flag(p, several=True)
    add_training_flags(p)
    add_study_output_flags(p, "runs/sweep")
    add_tensorboard_flag(p)
    add_cluster_flags(p)
    return p.parse_args(argv)


def _grid(args):
    """(key, trial, label) of every point; each trial keeps its run folder for the report and
    writes its TensorBoard files to <--tensorboard>/<key>/."""
    for backend in args.backends:
        for batch in args.batch_size:
            for filters in args.filters:
                for lr in args.lr:
                    for seed in args.seeds:
                        key = f"lr{lr:g}_f{filters}_b{batch}_s{seed}_{backend}"
                        label = (f"lr {lr:g} filters {filters} batch {batch} seed {seed} "
                                 f"{backend}")
                        board = f"{args.tensorboard}/{key}" if args.tensorboard else None
                        yield key, trial(lr, filters, batch, seed, backend, args.epochs,
                                         args.threads, args.dataset, args.data_dir,
                                         args.train_limit, tensorboard=board, keep=True), label


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
    from .results.figures import finish_figure, new_figure
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
    from .results.files import write_csv, write_json
    from .results.sysinfo import system_info
    args.backends = list(dict.fromkeys(trial_backend(PROG, b, bool(args.scheduler))
                                       for b in args.backend))
    if not args.scheduler:          # the data are read here too: a problem is one line now
        load_data(PROG, args)
    args.tensorboard = tensorboard_folder(PROG, args)
    tasks = list(_grid(args))
    settings = {k: getattr(args, k) for k in ("epochs", "train_limit", "dataset", "threads")}
    points = Points(args.out, settings, args.force)
    gpu = any(b in GPU_BACKENDS for b in args.backends)
    cpu = any(b not in GPU_BACKENDS for b in args.backends)
    print(f"sweep: {len(tasks)} trial(s) = {len(args.lr)} lr x {len(args.filters)} filters x "
          f"{len(args.batch_size)} batch x {len(args.seeds)} seed x {len(args.backends)} backend, "
          f"{args.epochs} epoch(s) each, {args.threads} thread(s) per trial", flush=True)
    with resumable(PROG, points), sweep_errors(PROG):
        results = run_points(lambda todo: Cluster(args.scheduler, args.workers, args.threads,
                                                  cpu, gpu), points, tasks)
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
