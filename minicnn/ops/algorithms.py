"""Convolution algorithms, chosen per layer the way cuDNN chooses them.

    im2col    columns + one GEMM (ops/conv.py): any geometry, every backend; the reference
    direct    sliding-window sums over contiguous pixels, no columns; stride 1.  Cheapest
              where the GEMM would be tiny: few input channels (the first layer)
    winograd  F(2x2, 3x3) and F(4x4, 5x5): each 2x2 (4x4) output tile from a 4x4 (8x8)
              input tile with 16 (64) instead of 36 (400) multiplications per channel
              pair; 3x3 or 5x5 kernels, stride 1, enough channels

A backend lists the algorithms it has as entries "conv2d/<algorithm>" of
``Backend.fused``; im2col is always there.  ``auto`` picks by the layer's
shape with the rules below, measured (conv + ReLU + 2x2 pool, forward and
backward, 25 images, one thread; docs/results.md): direct wins with one or
two input channels and 3x3 kernels (the 16 Winograd GEMMs would have an inner
dimension of 1 or 2), Winograd from three on, by 2-3x over im2col at 8 to 256 channels.  For
5x5 kernels Winograd's 64 GEMMs need 8 channels to beat im2col on CIFAR's
24x24 images.
"""
ALGORITHMS = ("im2col", "direct", "winograd")

# auto: direct up to this many input channels, Winograd (3x3, stride 1) from this many on,
# Winograd for 5x5 kernels from 8.  F(4x4, 5x5) against im2col, conv + ReLU (+ pool),
# forward and backward, one thread: 128 24x24 images to 64 filters, 0.72x im2col's speed
# at 4 channels, 0.96x at 6, 1.19x at 8; 50 16x16 images to 32 filters, 1.1-1.5x at 3,
# 1.8-1.9x at 4.
DIRECT_MAX_CHANNELS = 2
# ... and kernels up to 3x3: with 5x5 ones im2col is twice as fast (tf-mnist's first layer,
# 1 channel to 32 filters, conv + ReLU + pool: 8.6 ms against 17.0, forward and backward)
DIRECT_MAX_KERNEL = 3
WINOGRAD_MIN_CHANNELS = 3
WINOGRAD_5X5_MIN_CHANNELS = 8
WINOGRAD_KERNELS = ((3, 3), (5, 5))


def why_not(algorithm, g):
    """None where ``algorithm`` can compute a convolution of geometry ``g``, else the reason."""
    if algorithm == "direct" and (g.sh, g.sw) != (1, 1):
        return f"it needs stride 1, this layer has stride {g.sh}x{g.sw}"
    if algorithm == "winograd" and ((g.kh, g.kw) not in WINOGRAD_KERNELS or (g.sh, g.sw) != (1, 1)):
        return (f"it needs a 3x3 or 5x5 kernel with stride 1, this layer has a {g.kh}x{g.kw} "
                f"kernel with stride {g.sh}x{g.sw}")
    return None


def available(backend):
    return [a for a in ALGORITHMS if a == "im2col" or f"conv2d/{a}" in backend.fused]


def choose(conv, backend):
    """The algorithm for ``conv`` on ``backend``: its own choice if it names one (checked),
    else the rule for its shape among those the backend has."""
    have = available(backend)
    if conv.algorithm != "auto":
        if conv.algorithm not in have:
            raise ValueError(f"{conv.name}: algorithm {conv.algorithm!r} is not available on "
                             f"backend {backend.name!r} (it has: {', '.join(have)})")
        reason = why_not(conv.algorithm, conv.g)
        if reason:
            raise ValueError(f"{conv.name}: algorithm {conv.algorithm!r} cannot run this layer: "
                             f"{reason}; use 'im2col' or 'auto'")
        return conv.algorithm
    channels = conv.input_shape[0]
    if ("direct" in have and max(conv.g.kh, conv.g.kw) <= DIRECT_MAX_KERNEL
            and channels <= DIRECT_MAX_CHANNELS and not why_not("direct", conv.g)):
        return "direct"
    least = WINOGRAD_MIN_CHANNELS if conv.g.kh == 3 else WINOGRAD_5X5_MIN_CHANNELS
    if "winograd" in have and channels >= least and not why_not("winograd", conv.g):
        return "winograd"
    return "im2col"
