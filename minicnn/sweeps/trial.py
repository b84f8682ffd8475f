"""One trial: what a Dask task runs on a worker.  Train one model, score it, say where it ran.

A trial gives the same numbers wherever it runs (to float32 rounding: a
freshly compiled Numba kernel and its cached copy may order a sum
differently): it depends on its description (seed and thread count
included), not on its placement.
"""
import functools
import os


def trial(lr=0.1, filters=16, batch_size=50, seed=0, backend="numba", epochs=10, threads=1,
          dataset="mnist", data_dir=None, train_limit=None, test=True, arch="lab",
          tensorboard=None, keep=False):
    """The description of one training run (a dict: it travels to the worker).  ``arch``:
    a preset or an --arch spec (nn/spec.py); ``filters`` is the lab model's width.
    ``tensorboard``: a folder for the trial's event files (the worker writes them);
    ``keep``: the result carries the trial's model.npz and metrics.json (``files``), which
    the sweep keeps in <out>/trials/<key>/ for the report pages."""
    return dict(lr=lr, filters=filters, batch_size=batch_size, seed=seed, backend=backend,
                epochs=epochs, threads=threads, dataset=dataset, data_dir=data_dir,
                train_limit=train_limit, test=test, arch=arch, tensorboard=tensorboard,
                keep=keep)


@functools.lru_cache(maxsize=2)
def _dataset(name, data_dir, train_limit):
    """Each worker process reads the data once (from its own data root) and keeps it."""
    from ..data import load_dataset
    return load_dataset(name, data_dir, progress=False, train_limit=train_limit)


def _where():
    """Pin this worker to the cores its cluster gave it (MINICNN_CORES); say where we are."""
    import socket
    from ..parallel.mpi import pin_to_cores
    from ..parallel.threads import usable_cores
    cores = os.environ.get("MINICNN_CORES")
    if cores:
        pin_to_cores(int(c) for c in cores.split(","))
    try:
        from distributed import get_worker
        name = str(get_worker().name)
    except (ImportError, ValueError):
        name = "this process"
    return {"worker": name, "host": socket.gethostname(), "pid": os.getpid(),
            "cores": usable_cores(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _model(spec, shape, threads):
    from ..nn.model import Sequential
    from ..nn.spec import parse_arch
    return Sequential(parse_arch(spec.get("arch", "lab"), spec["filters"]), shape,
                      backend=spec["backend"], seed=spec["seed"], threads=threads)


def _warm_up(spec, data, threads):
    """Two steps of a throwaway model like the trial's: kernel compilation (or the disk cache's
    loading), BLAS start-up and first-touch costs are paid before the trial's clock starts, so
    the first point a process times is not charged for them."""
    from ..nn.optim import SGD
    model = _model(spec, data.train.x.shape[1:], threads)
    b, n = model.backend, 2 * spec["batch_size"]
    x, y = b.asarray(data.train.x[:n], dtype=model.dtype), b.asarray(data.train.y[:n])
    for start in (0, spec["batch_size"]):
        model.train_step(x[start:start + spec["batch_size"]], y[start:start + spec["batch_size"]],
                         SGD(spec["lr"]))
    b.synchronize()


def run_trial(spec):
    """Train the model ``spec`` (see ``trial``) describes, with plain SGD; returns a JSON-ready
    dict: every epoch's EpochStats, ``seconds`` (training steps only, the device
    synchronised), ``with_validation_seconds``, ``parameters``, ``images``, the test scores
    where asked, ``diverged`` (None or why) and ``placement``."""
    import numpy as np
    from ..nn.fit import NonFiniteLoss, fit
    from ..nn.optim import SGD
    from ..parallel.threads import configure
    placement = _where()
    threads = configure(spec["threads"])
    data = _dataset(spec["dataset"], spec["data_dir"], spec["train_limit"])
    _warm_up(spec, data, threads)
    model = _model(spec, data.train.x.shape[1:], threads)
    board = _board(spec, model, data)
    try:
        history = fit(model, SGD(spec["lr"]), data, spec["epochs"], spec["batch_size"],
                      spec["seed"], on_step=board.step if board else None,
                      on_epoch=board.on_epoch if board else None)
        diverged = None
    except NonFiniteLoss as exc:
        history, diverged = [], str(exc)
    finally:
        if board:
            board.close()
    result = {"epochs": [h._asdict() for h in history], "diverged": diverged,
              "parameters": model.num_params(), "images": len(data.train.y),
              "seconds": sum(h.train_seconds for h in history),
              "with_validation_seconds": history[-1].elapsed if history else None,
              "placement": placement}
    if spec["test"] and not diverged:
        with np.errstate(over="ignore", invalid="ignore"):
            result["test_loss"], result["test_accuracy"] = model.evaluate(data.test.x,
                                                                          data.test.y)
    if spec.get("keep"):
        result["files"] = _files(spec, model, result)
    return result


def _board(spec, model, data):
    """The trial's TensorBoardLog, or None; ``on_epoch`` logs each epoch's histograms."""
    if not spec.get("tensorboard"):
        return None
    from ..results.tensorboard import SAMPLE, TensorBoardLog
    board = TensorBoardLog(spec["tensorboard"])
    board.start(model, f"trial {spec}")
    sample = model.backend.asarray(data.val.x[:SAMPLE], dtype=model.dtype)
    board.on_epoch = lambda stats: board.epoch(stats, model, sample, len(data.train.y))
    return board


def _files(spec, model, result):
    """{name: bytes} of the trial's run folder: model.npz and a metrics.json like the one
    python -m minicnn.train writes (the report page reads both)."""
    import io
    import json
    buffer = io.BytesIO()
    model.save(buffer, dataset=spec["dataset"])
    config = {**{k: spec[k] for k in ("arch", "lr", "batch_size", "epochs", "seed", "dataset",
                                      "data_dir", "train_limit", "filters")},
              "optimizer": "sgd", "lr_schedule": "constant", "crop": None, "augment": False}
    metrics = {"config": config, "command": f"a sweep trial: {json.dumps(config)}",
               "epochs": result["epochs"], "parameters": result["parameters"],
               "backend": spec["backend"], "threads": spec["threads"],
               "training_images": result["images"],
               "runtime_seconds": result["with_validation_seconds"] or 0.0,
               "completed": result["diverged"] is None}
    if "test_accuracy" in result:
        metrics.update(test_loss=result["test_loss"], test_accuracy=result["test_accuracy"],
                       test_error=1 - result["test_accuracy"])
    return {"model.npz": buffer.getvalue(), "metrics.json": json.dumps(metrics, indent=2).encode()}
