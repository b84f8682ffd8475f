"""minicnn's side of benchmarks/epoch.py: its contender, the per-step breakdown of its plan,
and the one-time costs of a cold start (the frameworks' side: frameworks.py).

``MinicnnModel`` trains through ``minicnn.nn.fit.train_epoch``, the loop of ``python -m
minicnn.train``; ``breakdown`` times every step of the plan inside that loop; and
``one_time_costs`` runs a fresh process with empty caches, to measure Numba's compilation
and a training process's peak memory.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # minicnn, run from a clone

def synthetic_data(n, shape=(1, 28, 28), seed=0):
    """Random images of ``shape`` and labels; timings do not depend on the pixel values."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, 10, n)


def minicnn_model(backend, args, threads, shards_per_thread=1):
    """The benchmark's model in minicnn, on ``threads`` threads."""
    import minicnn
    from minicnn.nn.spec import parse_arch
    return minicnn.Sequential(parse_arch(args.arch, args.filters, algorithm=args.conv_algo),
                              args.input_shape, backend=backend, threads=threads,
                              shards=shards_per_thread * threads)


class MinicnnModel:
    """The benchmark's model in minicnn, trained by minicnn.nn.fit.train_epoch.  ``logged``:
    with TensorBoard logging as python -m minicnn.train --tensorboard does it (the training
    scalars every --log-every steps, and the epoch's histograms inside the timed epoch)."""

    def __init__(self, backend, args, threads, logged=False, shards_per_thread=1):
        import minicnn
        self.model = minicnn_model(backend, args, minicnn.configure_threads(threads),
                                   shards_per_thread)
        self.opt = minicnn.SGD(args.lr)
        self.name = f"minicnn-{backend}" + ("+tensorboard" if logged else "") + (
            "+augment" if args.augment else "") + (
            f" x{shards_per_thread} shards" if shards_per_thread > 1 else "")
        self.augment = augmenter(args) if args.augment else None
        self.board, self.board_folder = None, None
        if logged:
            from minicnn.results.tensorboard import TensorBoardLog
            self.board_folder = tempfile.mkdtemp(prefix="epoch-tb-")
            self.board = TensorBoardLog(self.board_folder, args.log_every)

    def num_params(self):
        return self.model.num_params()

    def close(self):
        """Flush and stop the TensorBoard writer (its thread fails at exit if left running)."""
        if self.board:
            self.board.close()
            shutil.rmtree(self.board_folder, ignore_errors=True)

    def train_epoch(self, x, y, batch_size):
        from minicnn.nn.fit import EpochStats, train_epoch
        b = self.model.backend
        x, y = b.asarray(x), b.asarray(y)
        order = b.xp.arange(len(y))
        on_step = self.board.step if self.board else None
        b.synchronize()
        start = time.perf_counter()
        loss, acc = train_epoch(self.model, self.opt, None if self.augment else x, y, batch_size,
                                order, on_step=on_step, augment=self.augment)
        if self.board:
            b.synchronize()
            took = time.perf_counter() - start
            self.board.epoch(EpochStats(1, loss, acc, loss, acc, took, took, took),
                             self.model, x[:64], len(y))
        b.synchronize()
        return time.perf_counter() - start


def augmenter(args):
    """The tutorial's augmentation of random 32x32 images to the model's crops."""
    from minicnn.data.augment import Augment
    c, crop = args.input_shape[0], args.input_shape[-1]
    images = synthetic_data(min(args.images, 5000), (c, 32, 32), 2)[0]
    full = Augment(images, crop)
    return lambda indices, epoch: full(indices % len(images), epoch)


def _best_seconds(backend, fn, repeats):
    """The shortest of ``repeats`` timed calls of fn() after one warm-up, the device
    synchronised around each."""
    best = float("inf")
    for i in range(repeats + 1):
        backend.synchronize()
        t = time.perf_counter()
        fn()
        backend.synchronize()
        if i:
            best = min(best, time.perf_counter() - t)
    return best


def gemm_peak(backend, size=1024, repeats=5):
    """GFLOP/s of this backend's float32 matrix product on (size x size) operands, the best of
    ``repeats`` (the ceiling the convolutions' and dense layers' GEMMs are measured against)."""
    a = backend.asarray(synthetic_data(size, (size,), 3)[0])
    out = backend.xp.empty((size, size), dtype=a.dtype)
    return 2 * size ** 3 / _best_seconds(backend, lambda: backend.xp.matmul(a, a, out=out),
                                         repeats) / 1e9


def copy_peak(backend, mib=4, repeats=20):
    """GB/s of this backend copying a ``mib`` MiB float32 array (read + write), the best of
    ``repeats``: the ceiling of a step limited by moving its arrays (4 MiB: about the lab
    step's largest arrays, held in L3 rather than L2)."""
    src = backend.asarray(synthetic_data(mib * 2**18, (), 4)[0])
    dst = backend.xp.empty_like(src)
    return 2 * src.nbytes / _best_seconds(backend, lambda: backend.xp.copyto(dst, src),
                                          repeats) / 1e9


def _address(array):
    interface = getattr(array, "__array_interface__", None)
    if interface is not None:
        return interface["data"][0]
    data = getattr(array, "data", None)
    return getattr(data, "ptr", id(array))


def touched_bytes(*objects):
    """Bytes of the distinct arrays among ``objects`` (arrays, or tuples, lists and dicts of
    them, nested: a step's input, parameters, output, cache, gradients): the traffic a step
    cannot avoid, each array read or written once."""
    seen, total, stack = set(), 0, list(objects)
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (tuple, list)):
            stack.extend(o)
        elif hasattr(o, "nbytes") and hasattr(o, "shape"):
            key = (_address(o), o.nbytes)
            if key not in seen:
                seen.add(key)
                total += o.nbytes
    return total


def step_flops(step, batch, first):
    """Nominal FLOPs (forward, backward) of one plan step for a batch: 2 x the multiply-adds
    of a direct convolution or of the dense product (Winograd does fewer multiplications,
    so its rate is an effective one, as cuDNN reports it); backward computes the weight
    gradient and, but for the first step, the input gradient."""
    from minicnn.nn.layers import Conv2D, Dense
    forward = 0
    for layer in step.layers:
        if isinstance(layer, Conv2D):
            forward += 2 * batch * layer.params["w"].size * layer.g.oh * layer.g.ow
        elif isinstance(layer, Dense):
            forward += 2 * batch * layer.params["w"].size
    return forward, forward * (1 if first else 2)


def breakdown(backend, args):
    """ms per step of every step of minicnn's plan (one thread), timed inside train_epoch,
    with the achieved GFLOP/s of the steps that multiply and every step's bytes moved
    (``touched_bytes``) and GB/s: {"parts": [...], "gemm_peak_gflops", "copy_peak_gbs"},
    the peaks measured here (``gemm_peak``, ``copy_peak``)."""
    import minicnn
    from minicnn.nn.fit import train_epoch
    minicnn.configure_threads(1)
    model = minicnn_model(backend, args, 1)
    opt = minicnn.SGD(args.lr)
    b = model.backend
    x, y = (b.asarray(a) for a in synthetic_data(args.batch_size * args.breakdown_steps,
                                                 args.input_shape, 1))
    order = b.xp.arange(len(y))
    times, moved = defaultdict(float), {}

    def timed(key, fn, step=None):
        def run(*a, **kw):
            b.synchronize()
            t = time.perf_counter()
            out = fn(*a, **kw)
            b.synchronize()
            times[key] += time.perf_counter() - t
            if step is not None and key not in moved:
                moved[key] = touched_bytes(a, out, step._params, step._cache)
            return out
        return run
    shard = model._plans[0]
    flops = {}
    for i, step in enumerate(model.plan):
        label = step.name + (f" [{step.algorithm}]" if step.algorithm else "")
        step.forward = timed(f"{label} forward", step.forward, step)
        step.backward = timed(f"{label} backward", step.backward, step)
        flops[f"{label} forward"], flops[f"{label} backward"] = step_flops(
            step, args.batch_size, first=i == 0)
    shard.loss_fn = timed("softmax cross-entropy", shard.loss_fn)
    opt.step = timed("sgd update", opt.step)
    train_epoch(model, opt, x[:args.batch_size * 5], y[:args.batch_size * 5], args.batch_size,
                order[:args.batch_size * 5])
    times.clear()
    start = time.perf_counter()
    train_epoch(model, opt, x, y, args.batch_size, order)
    total = time.perf_counter() - start
    times["other (batching, checks, Python)"] = total - sum(times.values())
    parts = [{"part": k, "ms": 1e3 * v / args.breakdown_steps, "share": v / total}
             for k, v in times.items()]
    for p in parts:
        if flops.get(p["part"]):
            p["gflops"] = flops[p["part"]] / (p["ms"] / 1e3) / 1e9
        if moved.get(p["part"]):
            p["mbytes"] = moved[p["part"]] / 1e6
            p["gbs"] = moved[p["part"]] / (p["ms"] / 1e3) / 1e9
    if args.augment:        # on the host, overlapped with training in a run: its own share
        import numpy as np
        augment, n = augmenter(args), len(order)
        start = time.perf_counter()
        for step in range(args.breakdown_steps):
            augment(np.arange(step * args.batch_size, (step + 1) * args.batch_size) % n, 1)
        took = time.perf_counter() - start
        parts.append({"part": "augmentation (background thread, overlapped)",
                      "ms": 1e3 * took / args.breakdown_steps, "share": took / total,
                      "overlapped": True})
    return {"parts": parts, "gemm_peak_gflops": gemm_peak(b), "copy_peak_gbs": copy_peak(b)}


# Peak memory comes from VmHWM: ru_maxrss would report the parent's peak, since Linux
# carries it across fork and exec.
CHILD = r"""
import argparse, json, sys, time
sys.path.insert(0, {bench!r})
def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
import minicnn_contender as epoch
args = argparse.Namespace(**json.loads({args!r}))
args.input_shape = tuple(args.input_shape)
lab = epoch.MinicnnModel({backend!r}, args, None)
x, y = epoch.synthetic_data({images}, args.input_shape)
t1 = time.perf_counter(); lab.train_epoch(x[:{batch}], y[:{batch}], {batch}); t2 = time.perf_counter()
lab.train_epoch(x[:{batch}], y[:{batch}], {batch}); t3 = time.perf_counter()
lab.train_epoch(x, y, {batch})
print(json.dumps({{"import_and_build_s": t1 - t0, "first_step_s": t2 - t1,
                  "second_step_s": t3 - t2, "peak_rss_mib": peak_mib()}}))
"""


def one_time_costs(backend, args):
    """Cold start (empty Numba and kernel caches) and peak RSS of an epoch, in a fresh process."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, MINICNN_CACHE=cache, CUPY_CACHE_DIR=cache)
        code = CHILD.format(bench=str(Path(__file__).resolve().parent), backend=backend,
                            args=json.dumps(vars(args)), batch=args.batch_size,
                            images=args.images)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, timeout=3600)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    costs = json.loads(result.stdout.strip().splitlines()[-1])
    costs["compile_s"] = costs["first_step_s"] - costs["second_step_s"]
    return costs
