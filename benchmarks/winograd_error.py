"""How far Winograd's float32 results are from the exact convolution: F(2x2, 3x3), which
minicnn runs, against F(4x4, 3x3), the candidate for fewer multiplications; and for 5x5
kernels F(4x4, 5x5), which minicnn runs, against F(2x2, 5x5).

    python benchmarks/winograd_error.py                    # the lab model's second layer
    python benchmarks/winograd_error.py --filters 16,64,256 --out runs/winograd-error
    python benchmarks/winograd_error.py --kernel 5 --filters 32,64 --size 12   # the tutorials'

Issue 22 asks for F(4x4, 3x3)'s float32 error before it is built: it needs 4x fewer
multiplications than direct (2.25x for F(2x2, 3x3)), but its transforms hold 1/24 and
factors up to 8, which amplify rounding (Lavin & Gray 2016).  On inputs like the lab
model's second layer (ReLU'd activations, Glorot-uniform weights, 'same' padding, batch
50 of 14x14), each line compares against a float64 direct convolution:

  - minicnn's own winograd kernel (numba, float32), the algorithm in production (for 5x5
    kernels, the plain convolution's F(4x4, 5x5));
  - F(2x2, r x r) and F(4x4, r x r) written out here with NumPy in float32 (tile by tile:
    V = B^T d B, U = G g G^T, M = sum over channels of U * V, Y = A^T M A);
  - the direct convolution in float32 (im2col, the reference's order), the floor.

Printed: the largest error relative to the largest output, and the RMS error relative to
the RMS output.  The float64 runs of the two transforms match direct to 1e-12 (tested),
so the gap is float32 rounding, not a wrong matrix.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minicnn.cli import ArgumentParser, number_list, positive_int, seed  # noqa: E402
from minicnn.results.files import write_json  # noqa: E402

PROG = "benchmarks/winograd_error.py"

# (B^T, G, A^T) of F(m x m, r x r): the interpolation points 0, +-1 (alpha = 4), 0, +-1, +-2
# (alpha = 6; Lavin & Gray's) and 0, +-1, +-2, +-1/2 (alpha = 8), plus infinity.
_B6 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])
TRANSFORMS = {
    (2, 3): (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]])),
    (4, 3): (_B6,
             np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
             np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                       [0, 1, -1, 8, -8, 1]])),
    (2, 5): (_B6,
             np.array([[1 / 4, 0, 0, 0, 0], [-1 / 6] * 5, [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3],
                       [1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3], [0, 0, 0, 0, 1]]),
             np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]])),
    (4, 5): (np.array([[1, 0, -21 / 4, 0, 21 / 4, 0, -1, 0],
                       [0, 1, 1, -17 / 4, -17 / 4, 1, 1, 0], [0, -1, 1, 17 / 4, -17 / 4, -1, 1, 0],
                       [0, 1 / 2, 1 / 4, -5 / 2, -5 / 4, 2, 1, 0],
                       [0, -1 / 2, 1 / 4, 5 / 2, -5 / 4, -2, 1, 0],
                       [0, 2, 4, -5 / 2, -5, 1 / 2, 1, 0], [0, -2, 4, 5 / 2, -5, -1 / 2, 1, 0],
                       [0, -1, 0, 21 / 4, 0, -21 / 4, 0, 1]]),
             np.array([[1, 0, 0, 0, 0], [-2 / 9] * 5, [-2 / 9, 2 / 9, -2 / 9, 2 / 9, -2 / 9],
                       [1 / 90, 1 / 45, 2 / 45, 4 / 45, 8 / 45],
                       [1 / 90, -1 / 45, 2 / 45, -4 / 45, 8 / 45],
                       [32 / 45, 16 / 45, 8 / 45, 4 / 45, 2 / 45],
                       [32 / 45, -16 / 45, 8 / 45, -4 / 45, 2 / 45], [0, 0, 0, 0, 1]]),
             np.array([[1, 1, 1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1 / 2, -1 / 2, 0],
                       [0, 1, 1, 4, 4, 1 / 4, 1 / 4, 0], [0, 1, -1, 8, -8, 1 / 8, -1 / 8, 1]])),
}


def winograd_conv(x, w, m, dtype):
    """'same' r x r convolution of x (N, C, H, W) with w (F, C, r, r) by F(m x m, r x r),
    every product and sum in ``dtype``: y (N, F, H, W)."""
    r = w.shape[2]
    bt, g, at = (t.astype(dtype) for t in TRANSFORMS[m, r])
    x, w = x.astype(dtype), w.astype(dtype)
    n, c, h, wd = x.shape
    th, tw = -(-h // m), -(-wd // m)
    padded = np.zeros((n, c, th * m + r - 1, tw * m + r - 1), dtype)
    padded[:, :, r // 2:h + r // 2, r // 2:wd + r // 2] = x
    rows = np.arange(th)[:, None] * m + np.arange(m + r - 1)       # (th, alpha) input rows
    cols = np.arange(tw)[:, None] * m + np.arange(m + r - 1)
    tiles = padded[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (n, c, th, tw, t, t)
    v = np.einsum("ij,ncabjk,lk->ncabil", bt, tiles, bt)
    u = np.einsum("ij,fcjk,lk->fcil", g, w, g)
    mm = np.einsum("fcil,ncabil->nfabil", u, v)
    y = np.einsum("ij,nfabjk,lk->nfabil", at, mm, at)              # (n, f, th, tw, m, m)
    y = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, w.shape[0], th * m, tw * m)
    return y[:, :, :h, :wd]


def direct_conv(x, w, dtype):
    """The same convolution ('same', k x k) as one sum per output, in ``dtype`` (im2col +
    GEMM)."""
    x, w = x.astype(dtype), w.astype(dtype)
    n, c, h, wd = x.shape
    k = w.shape[2]
    padded = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    cols = np.stack([padded[:, :, i:i + h, j:j + wd] for i in range(k) for j in range(k)],
                    axis=2)                                         # (n, c, k*k, h, w)
    return np.einsum("fck,nckhw->nfhw", w.reshape(w.shape[0], c, k * k), cols)


def minicnn_winograd(x, w):
    """minicnn's numba winograd kernel in float32 (the public NCHW layout in and out)."""
    from minicnn.backend import get_backend
    from minicnn.backend.numba_kernels.winograd import conv2d_forward
    from minicnn.ops.geometry import window
    k = w.shape[2]
    g = window(x.shape[2], x.shape[3], (k, k), (1, 1), "same")
    y, _ = conv2d_forward(np.ascontiguousarray(x.transpose(1, 0, 2, 3), np.float32),
                          w.astype(np.float32), np.zeros(w.shape[0], np.float32), g,
                          get_backend("numba"))
    return y.transpose(1, 0, 2, 3)


def errors(got, exact):
    """(largest error / largest |exact|, RMS error / RMS exact)."""
    diff = got.astype(np.float64) - exact
    return (float(np.abs(diff).max() / np.abs(exact).max()),
            float(np.sqrt(np.mean(diff ** 2) / np.mean(exact ** 2))))


def lab_layer_inputs(filters, batch, size, rng, kernel=3):
    """ReLU'd activations and Glorot-uniform weights, as the lab model's second layer sees."""
    x = np.maximum(rng.standard_normal((batch, filters, size, size)), 0)
    limit = np.sqrt(6 / (2 * filters * kernel * kernel))
    return x, rng.uniform(-limit, limit, (filters, filters, kernel, kernel))


def measure(filters, batch, size, rng, kernel=3):
    x, w = lab_layer_inputs(filters, batch, size, rng, kernel)
    exact = direct_conv(x, w, np.float64)
    tile = 4 if kernel == 5 else 2                       # minicnn's plain convolution's
    rows = [(f"minicnn winograd F({tile}x{tile},{kernel}x{kernel}), numba", minicnn_winograd(x, w)),
            (f"F(2x2,{kernel}x{kernel}), NumPy", winograd_conv(x, w, 2, np.float32)),
            (f"F(4x4,{kernel}x{kernel}), NumPy", winograd_conv(x, w, 4, np.float32))]
    rows.append(("direct (im2col), NumPy", direct_conv(x, w, np.float32)))
    return [{"filters": filters, "algorithm": name, "max_rel": e[0], "rms_rel": e[1]}
            for name, y in rows for e in [errors(y, exact)]]


def main(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--filters", type=number_list(int), default=[16],
                   help="comma-separated widths of the layer (in and out), default 16")
    p.add_argument("--kernel", type=int, choices=(3, 5), default=3,
                   help="3 (default) or 5: F(2x2, k x k) and F(4x4, k x k)")
    p.add_argument("--batch-size", type=positive_int, default=50)
    p.add_argument("--size", type=positive_int, default=14, help="image side (default 14)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", help="write winograd_error.json here")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    results = [r for f in args.filters
               for r in measure(f, args.batch_size, args.size, rng, args.kernel)]
    print(f"float32 error against a float64 direct convolution, {args.kernel}x{args.kernel} "
          f"'same', batch "
          f"{args.batch_size} of {args.size}x{args.size}")
    print(f"{'filters':>7s}  {'algorithm':36s} {'max err / max |y|':>18s} {'rms err / rms y':>16s}")
    for r in results:
        print(f"{r['filters']:7d}  {r['algorithm']:36s} {r['max_rel']:18.2e} {r['rms_rel']:16.2e}")
    if args.out:
        write_json(Path(args.out) / "winograd_error.json", {"config": vars(args),
                                                             "results": results})
        print(f"wrote {Path(args.out) / 'winograd_error.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
