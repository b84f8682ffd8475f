"""python -m minicnn.evaluate MODEL.npz: test accuracy of a saved model."""
import sys

from .cli import ArgumentParser, add_backend_flag, add_data_flags, fail, load_data, resolve_backend

PROG = "python -m minicnn.evaluate"


def main(argv=None):
    p = ArgumentParser(prog=PROG, description="Report the test accuracy of a saved minicnn model.")
    p.add_argument("model", help="a model.npz written by minicnn (e.g. by --out)")
    add_backend_flag(p)
    add_data_flags(p, "the test set to score (default: the one the model was trained on, as its "
                      "file records; mnist for files that record none)")
    args = p.parse_args(argv)
    from .nn.loading import load
    from .parallel.threads import configure
    backend = resolve_backend(PROG, args.backend)
    try:
        model = load(args.model, backend=backend, threads=configure())
    except (OSError, ValueError) as exc:
        fail(PROG, str(exc))
    args.dataset = args.dataset or model.metadata.get("dataset", "mnist")
    test = load_data(PROG, args).test
    if tuple(test.x.shape[1:]) != model.input_shape:
        fail(PROG, f"the model expects {model.input_shape} inputs, {args.dataset} has "
                   f"{tuple(test.x.shape[1:])}")
    loss, acc = model.evaluate(test.x, test.y)
    print(f"{args.dataset} test accuracy {100 * acc:.2f}%  test error {100 * (1 - acc):.2f}%  "
          f"test loss {loss:.4f}  ({len(test.y):,} images, {model.num_params():,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
