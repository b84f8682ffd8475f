"""One epoch of the lab model: minicnn's backends beside PyTorch and TensorFlow.

    python benchmarks/epoch.py                       # 16 filters, batch 50, 3 repeats
    python benchmarks/epoch.py --filters 64 --threads 2 --repeats 5 --out results/epoch64

Every contender trains the identical model (same layers, same initialisation
scheme, SGD 0.1, batch 50) for one epoch of 55,000 images, in this one
process, alternating contenders within each repeat.  Reported: median and
spread of the epoch time, images per second, ratio to each framework, a
per-layer forward/backward breakdown for minicnn, the one-time compile time
(cold caches, measured in a subprocess) and the peak memory of a training
process (also a subprocess, so the frameworks' memory does not count).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import frameworks  # noqa: E402

import minicnn  # noqa: E402
from minicnn.backend import get_backend  # noqa: E402
from minicnn.cli import ArgumentParser, positive_int  # noqa: E402
from minicnn.report import write_json  # noqa: E402
from minicnn.sysinfo import system_info  # noqa: E402
from minicnn.threads import configure, current_threads  # noqa: E402

SPEED_BACKENDS = ("numba", "numpy", "cupy")   # cudasim is for correctness, not speed


def parse_args(argv=None):
    p = ArgumentParser(prog="benchmarks/epoch.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--filters", type=positive_int, default=16)
    p.add_argument("--batch-size", type=positive_int, default=50)
    p.add_argument("--images", type=positive_int, default=55_000, help="images per epoch")
    p.add_argument("--threads", type=positive_int, default=os.cpu_count())
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--backends", default=",".join(SPEED_BACKENDS),
                   help="comma-separated minicnn backends (those unavailable are reported)")
    p.add_argument("--no-frameworks", action="store_true", help="skip PyTorch and TensorFlow")
    p.add_argument("--breakdown-steps", type=int, default=100,
                   help="steps timed layer by layer (0: no breakdown)")
    p.add_argument("--no-subprocess", action="store_true",
                   help="skip the cold-compile and peak-memory measurements")
    p.add_argument("--out", help="write epoch.json here")
    args = p.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    return args


def synthetic_mnist(n, seed=0):
    """MNIST-shaped data; timings do not depend on the pixel values."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n)


class MinicnnLab:
    def __init__(self, backend, filters, threads, units=128, lr=0.1):
        self.backend = get_backend(backend)
        self.threads = threads
        self.model = minicnn.lab_model(filters, units, backend=backend)
        self.opt = minicnn.SGD(lr)
        self.name = f"minicnn-{backend}"

    def synchronize(self):
        self.backend.synchronize()

    def num_params(self):
        return self.model.num_params()

    def train_epoch(self, x, y, batch_size):
        b = self.backend
        configure(b.name, self.threads)    # torch/TF in this process may have changed BLAS
        x, y = b.asarray(x), b.asarray(y)
        self.synchronize()
        start = time.perf_counter()
        for i in range(0, len(y), batch_size):
            self.model.train_step(x[i:i + batch_size], y[i:i + batch_size], self.opt)
        self.synchronize()
        return time.perf_counter() - start


def layer_breakdown(backend, filters, batch_size, steps, threads):
    """Mean ms per step of each layer's forward and backward (fused ReLUs go with their layer)."""
    configure(backend, threads)
    model = minicnn.lab_model(filters, backend=backend)
    b, opt = model.backend, minicnn.SGD(0.1)
    x, y = synthetic_mnist(batch_size)
    x, y = b.asarray(x), b.asarray(y)
    for _ in range(3):
        model.train_step(x, y, opt)
    times = defaultdict(float)

    def timed(key, fn, *a, **kw):
        b.synchronize()
        t = time.perf_counter()
        out = fn(*a, **kw)
        b.synchronize()
        times[key] += time.perf_counter() - t
        return out
    for _ in range(steps):
        h = x
        for layer, relu in model.steps:
            name = layer.name + ("+relu" if relu else "")
            h = timed(f"{name} forward", layer.forward, h, **({"relu": True} if relu else {}))
        _, d = timed("loss", b.softmax_cross_entropy, h, y)
        for i in range(len(model.steps) - 1, -1, -1):
            layer, relu = model.steps[i]
            name = layer.name + ("+relu" if relu else "")
            d = timed(f"{name} backward", layer.backward, d, need_dx=i > 0)
        timed("sgd update", opt.step, model)
    total = sum(times.values())
    return [{"part": k, "ms": 1e3 * v / steps, "share": v / total} for k, v in times.items()]


# Peak memory comes from VmHWM: ru_maxrss would report the parent's peak, since Linux
# carries it across fork and exec.
CHILD = r"""
import json, resource, sys, time
def peak_mib():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
import numpy as np, minicnn
model = minicnn.lab_model({filters}, backend="{backend}")
b, opt = model.backend, minicnn.SGD(0.1)
x = b.asarray(np.random.default_rng(0).random(({batch}, 1, 28, 28), dtype=np.float32))
y = b.asarray(np.arange({batch}) % 10)
t1 = time.perf_counter(); model.train_step(x, y, opt); b.synchronize(); t2 = time.perf_counter()
model.train_step(x, y, opt); b.synchronize(); t3 = time.perf_counter()
xs = b.asarray(np.random.default_rng(1).random(({images}, 1, 28, 28), dtype=np.float32))
ys = b.asarray(np.arange({images}) % 10)
for i in range(0, {images}, {batch}):
    model.train_step(xs[i:i + {batch}], ys[i:i + {batch}], opt)
b.synchronize()
print(json.dumps({{"import_and_build_s": t1 - t0, "first_step_s": t2 - t1, "second_step_s": t3 - t2,
                  "peak_rss_mib": peak_mib()}}))
"""


def one_time_costs(backend, filters, batch, images):
    """Cold compile (empty Numba and kernel caches) and peak RSS of one epoch, in a subprocess."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, MINICNN_CACHE=cache, CUPY_CACHE_DIR=cache)
        code = CHILD.format(filters=filters, backend=backend, batch=batch, images=images)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, timeout=3600)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    costs = json.loads(result.stdout.strip().splitlines()[-1])
    costs["compile_s"] = costs["first_step_s"] - costs["second_step_s"]
    return costs


def main(argv=None):
    args = parse_args(argv)
    contenders, notes = [], []
    for name in args.backends:
        try:
            get_backend(name)
        except Exception as exc:
            notes.append(f"minicnn-{name}: skipped ({exc})")
            continue
        contenders.append(MinicnnLab(name, args.filters, args.threads))
    if not args.no_frameworks:
        for make, label in ((lambda: frameworks.make_torch(args.filters, 128, 0.1, args.threads),
                             "pytorch (cpu)"),
                            (lambda: frameworks.make_torch(args.filters, 128, 0.1, args.threads,
                                                           "cuda"), "pytorch (cuda)"),
                            (lambda: frameworks.make_keras(args.filters, 128, 0.1, args.threads),
                             "tensorflow")):
            c = make()
            (contenders.append(c) if c else notes.append(f"{label}: not installed / no device"))
    x, y = synthetic_mnist(args.images)
    print(f"lab model, {args.filters} filters, batch {args.batch_size}, {args.images:,} images "
          f"({-(-args.images // args.batch_size)} steps), {args.threads} threads, "
          f"{args.repeats} repeats; threads now {current_threads()}")
    for note in notes:
        print("  " + note)
    for c in contenders:
        assert c.num_params() == contenders[0].num_params(), (c.name, c.num_params())
        c.train_epoch(x[:args.batch_size * 5], y[:args.batch_size * 5], args.batch_size)  # warm up
    times = defaultdict(list)
    for r in range(args.repeats):
        for c in contenders:
            times[c.name].append(c.train_epoch(x, y, args.batch_size))
            print(f"  repeat {r + 1}: {c.name:32s} {times[c.name][-1]:7.2f} s", flush=True)
    rows = []
    for c in contenders:
        t = times[c.name]
        med = statistics.median(t)
        rows.append({"contender": c.name, "median_s": med, "min_s": min(t), "max_s": max(t),
                     "images_per_s": args.images / med, "runs": t})
    frameworks_rows = [r for r in rows if not r["contender"].startswith("minicnn")]
    print(f"\n{'contender':34s} {'median s':>9s} {'min..max':>15s} {'img/s':>8s}  ratios")
    for r in rows:
        ratios = "  ".join(f"{f['median_s'] / r['median_s']:.2f}x vs {f['contender'].split()[0]}"
                           for f in frameworks_rows if r["contender"].startswith("minicnn"))
        print(f"{r['contender']:34s} {r['median_s']:9.2f} {r['min_s']:7.2f}..{r['max_s']:<7.2f}"
              f"{r['images_per_s']:8.0f}  {ratios}")
    result = {"config": vars(args), "system": system_info(), "threads": current_threads(),
              "epochs": rows, "notes": notes, "breakdown": {}, "one_time": {}}
    for c in contenders:
        if not isinstance(c, MinicnnLab):
            continue
        name = c.backend.name
        if args.breakdown_steps > 0:
            parts = layer_breakdown(name, args.filters, args.batch_size, args.breakdown_steps,
                                    args.threads)
            result["breakdown"][name] = parts
            print(f"\nper-layer breakdown, minicnn-{name} (ms per step, share):")
            for p in parts:
                print(f"  {p['part']:28s} {p['ms']:7.3f} ms  {100 * p['share']:5.1f}%")
            print(f"  {'total':28s} {sum(p['ms'] for p in parts):7.3f} ms")
        if not args.no_subprocess:
            costs = one_time_costs(name, args.filters, args.batch_size, args.images)
            result["one_time"][name] = costs
            print(f"minicnn-{name}: " + ("; ".join(f"{k} {v:.2f}" for k, v in costs.items())
                                        if "error" not in costs else f"failed: {costs['error']}"))
    if args.out:
        write_json(Path(args.out) / "epoch.json", result)
        print(f"\nwrote {Path(args.out) / 'epoch.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
