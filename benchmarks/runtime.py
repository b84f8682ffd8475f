"""Study 2: training time against the number of filters, on the CPU and on the GPU.

    python benchmarks/runtime.py                     # CPU 8-64 filters; GPU 8-256 where there is one
    python benchmarks/runtime.py --epochs 10 --compare --out runs/runtime-full

Trains the lab model (batch 50, SGD 0.1) for each filter count on each
backend, timing the training steps with time.perf_counter() (the GPU is
synchronised before the clock is read; per-epoch validation is not counted,
as for the framework series), and draws runtime against the number of
parameters, one series per backend.  Writes runtime.png, runtime.csv and
runtime.json; finished points are kept in <out>/points/ so an interrupted run
resumes.  --compare adds PyTorch and TensorFlow series where installed.

Each minicnn point is a timing trial on Dask distributed (minicnn/sweeps/),
placed so that two timing trials never share a core: each takes a ``cores``
resource of --threads (default: all the cores of a worker; on the default
local cluster, all the cores of this machine, so the trials run one at a
time).  --scheduler tcp://HOST:8786 sends them to a running cluster whose
workers offer ``--resources cores=N`` (docs/distributed.md).  The output says
where each trial ran.  PyTorch and TensorFlow points run in this process,
one at a time, after the Dask trials.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402

import frameworks  # noqa: E402
from common import add_study_flags  # noqa: E402

from minicnn.backend import BackendUnavailable, get_backend  # noqa: E402
from minicnn.cli import (ArgumentParser, add_backend_flag, add_cluster_flags, fail,  # noqa: E402
                         load_data, number_list, resumable, sweep_errors)
from minicnn.results.figures import finish_figure, new_figure  # noqa: E402
from minicnn.results.files import write_csv, write_json  # noqa: E402
from minicnn.results.sysinfo import system_info  # noqa: E402
from minicnn.sweeps.cluster import GPU_BACKENDS, Cluster  # noqa: E402
from minicnn.sweeps.points import Points, run_points  # noqa: E402
from minicnn.sweeps.trial import trial  # noqa: E402

PROG = "benchmarks/runtime.py"
COLUMNS = ("series", "device", "filters", "parameters", "seconds", "with_validation_seconds",
           "seconds_per_epoch",
           "images_per_second", "epochs", "images", "val_accuracy")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_backend_flag(p, "--cpu-backend", "numba", help="minicnn backend for the CPU series")
    add_backend_flag(p, "--gpu-backend", "cupy", help="minicnn backend for the GPU series")
    p.add_argument("--cpu-filters", type=number_list(int), default=[8, 16, 32, 64])
    p.add_argument("--gpu-filters", type=number_list(int), default=[8, 16, 32, 64, 128, 256])
    p.add_argument("--devices", default="cpu,gpu", help="which series: cpu, gpu or cpu,gpu")
    p.add_argument("--compare", action="store_true", help="add PyTorch/TensorFlow series")
    add_study_flags(p, "runs/runtime")
    add_cluster_flags(p, None, "threads (and cores of its own) of each CPU timing trial "
                      "(default: all the cores of a worker)")
    p.set_defaults(epochs=2)
    args = p.parse_args(argv)
    args.devices = [d for d in args.devices.split(",") if d]
    if set(args.devices) - {"cpu", "gpu"}:
        p.error(f"--devices: use cpu, gpu or cpu,gpu, got {','.join(args.devices)}")
    return args


def minicnn_trial(backend, filters, args, threads):
    """The timing trial of one point (run by minicnn.sweeps.trial.run_trial on a Dask worker)."""
    return trial(0.1, filters, args.batch_size, args.seed, backend, args.epochs, threads,
                 args.dataset, args.data_dir, args.train_limit, test=False)


def minicnn_point(result):
    # Training steps only, like the framework series (fit() synchronises the device
    # before reading the clock); validation time is kept separately.
    return {"parameters": result["parameters"], "seconds": result["seconds"],
            "with_validation_seconds": result["with_validation_seconds"],
            "val_accuracy": result["epochs"][-1]["val_accuracy"],
            "placement": result["placement"]}


def framework_point(contender, args, data):
    x = np.asarray(data.train.x)        # the frameworks take float32 arrays, not Images
    seconds = sum(contender.train_epoch(x, data.train.y, args.batch_size)
                  for _ in range(args.epochs))
    return {"parameters": contender.num_params(), "seconds": seconds, "val_accuracy": None}


def series_plan(args):
    """([(series, device, filters, runner)], [skip reasons]); runner is the backend's name for
    minicnn (Dask timing trials), or runner(filters, data) -> point for a framework."""
    plan, skipped = [], []
    for device in args.devices:
        name = args.cpu_backend if device == "cpu" else args.gpu_backend
        filters = args.cpu_filters if device == "cpu" else args.gpu_filters
        try:
            backend = get_backend(name)
        except (BackendUnavailable, ValueError) as exc:
            skipped.append(f"{device.upper()} series (minicnn-{name}) skipped: {exc}")
            continue
        plan.append((f"minicnn-{name}", device, filters, backend.name))
    if args.compare:
        for device in args.devices:
            filters = args.cpu_filters if device == "cpu" else args.gpu_filters
            options = [("pytorch", lambda f, d=device: frameworks.make_torch(
                "lab", (1, 28, 28), 0.1, args.threads, f, "cuda" if d == "gpu" else "cpu"))]
            if device == "cpu":
                options.append(("tensorflow", lambda f: frameworks.make_keras(
                    "lab", (1, 28, 28), 0.1, args.threads, f)))
            for fw, make in options:
                if make(filters[0]) is None:
                    skipped.append(f"{fw} on {device}: not installed or no device")
                    continue
                plan.append((fw, device, filters,
                             lambda f, data, make=make: framework_point(make(f), args, data)))
    return plan, skipped


def plot(rows, path, epochs, images):
    fig, ax = new_figure(figsize=(7, 4.5))
    for series in dict.fromkeys((r["series"], r["device"]) for r in rows):
        pts = [r for r in rows if (r["series"], r["device"]) == series]
        ax.plot([r["parameters"] for r in pts], [r["seconds"] for r in pts], "o--",
                label=f"{series[0]} ({series[1].upper()})")
        for r in pts:
            ax.annotate(str(r["filters"]), (r["parameters"], r["seconds"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xscale="log", xlabel="number of parameters", ylabel="training time (s)",
           title=f"Lab CNN: {epochs} epoch(s) of {images:,} images, labels = filters")
    finish_figure(fig, [ax], path)


def main(argv=None):
    args = parse_args(argv)
    data = load_data(PROG, args)
    images = len(data.train.y)
    settings = {k: getattr(args, k) for k in ("epochs", "batch_size", "seed", "train_limit",
                                              "dataset", "threads")}
    points = Points(args.out, settings, args.force)
    plan, skipped = series_plan(args)
    print(f"runtime study: lab model, batch {args.batch_size}, {args.epochs} epoch(s) of "
          f"{images:,} images")
    for line in skipped:
        print("  " + line)
    trials = [(f"{series}_{device}_{f}", minicnn_trial(run, f, args, args.threads if
                                                      device == "cpu" else 1),
               f"{series} ({device}) {f} filters")
              for series, device, filters, run in plan if isinstance(run, str) for f in filters]
    def cluster(todo):          # a trial's threads=None: a whole worker's cores
        devices = {spec["backend"] in GPU_BACKENDS for spec in todo}
        return Cluster(args.scheduler, args.workers, args.threads, cpu=False in devices,
                       gpu=True in devices, timing=True)

    with resumable(PROG, points), sweep_errors(PROG):
        found = run_points(cluster, points, trials, on_new=lambda key, r: minicnn_point(r),
                           reuse_note="reusing the finished point")
        frameworks_here = [(s, d, fs, run) for s, d, fs, run in plan if not isinstance(run, str)]
        if frameworks_here:
            print("  PyTorch/TensorFlow points: in this process, one at a time")
        for series, device, filters, run in frameworks_here:
            for f in filters:
                key = f"{series}_{device}_{f}"
                found[key] = points.get(key)
                if found[key] is None:
                    print(f"  {series} ({device}) {f:3d} filters ...", end=" ", flush=True)
                    found[key] = points.put(key, run(f, data))
                    print(f"{found[key]['seconds']:.1f} s")
    rows = []
    for series, device, filters, _ in plan:
        for f in filters:
            point = found[f"{series}_{device}_{f}"]
            rows.append({"series": series, "device": device, "filters": f, **point,
                         "seconds_per_epoch": point["seconds"] / args.epochs,
                         "images_per_second": images * args.epochs / point["seconds"],
                         "epochs": args.epochs, "images": images})
    if not rows:
        fail(PROG, "nothing could run: " + "; ".join(skipped), 1)
    out = Path(args.out)
    write_csv(out / "runtime.csv", rows, COLUMNS)
    write_json(out / "runtime.json", {"settings": settings, "rows": rows, "skipped": skipped,
                                      "system": system_info()})
    plot(rows, out / "runtime.png", args.epochs, images)
    print(f"\n{'series':22s} {'dev':4s} {'filters':>7s} {'params':>10s} {'seconds':>9s} "
          f"{'s/epoch':>8s} {'img/s':>8s}")
    for r in rows:
        print(f"{r['series']:22s} {r['device']:4s} {r['filters']:7d} {r['parameters']:10,d} "
              f"{r['seconds']:9.1f} {r['seconds_per_epoch']:8.1f} {r['images_per_second']:8.0f}")
    for line in skipped:
        print(line)
    print(f"wrote {out / 'runtime.png'}, runtime.csv, runtime.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
