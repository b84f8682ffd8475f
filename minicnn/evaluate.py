"""python -m minicnn.evaluate MODEL.npz: test accuracy of a saved model."""
import sys

from .cli_helpers import ArgumentParser, add_data_flags, backend_choices, fail, resolve_backend

PROG = "python -m minicnn.evaluate"


def main(argv=None):
    p = ArgumentParser(prog=PROG, description="Report the test accuracy of a saved minicnn model.")
    p.add_argument("model", help="a model.npz written by minicnn (e.g. by --out)")
    p.add_argument("--backend", default="auto", choices=backend_choices())
    add_data_flags(p, "the test set to score (default: the one the model was trained on, as its "
                      "file records; mnist for files that record none)")
    args = p.parse_args(argv)
    from .data import DataError, load_dataset
    from .saving import load
    from .threads import configure
    backend = resolve_backend(PROG, args.backend)
    try:
        model = load(args.model, backend=backend, threads=configure())
    except (OSError, ValueError) as exc:
        fail(PROG, str(exc))
    dataset = args.dataset or model.metadata.get("dataset", "mnist")
    try:
        test = load_dataset(dataset, args.data_dir, progress=False).test
    except (DataError, OSError, ValueError) as exc:
        fail(PROG, f"cannot read {dataset}: {exc}")
    if tuple(test.x.shape[1:]) != model.input_shape:
        fail(PROG, f"the model expects {model.input_shape} inputs, {dataset} has "
                   f"{tuple(test.x.shape[1:])}")
    loss, acc = model.evaluate(test.x, test.y)
    print(f"{dataset} test accuracy {100 * acc:.2f}%  test error {100 * (1 - acc):.2f}%  "
          f"test loss {loss:.4f}  ({len(test.y):,} images, {model.num_params():,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
