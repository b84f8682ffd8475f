"""Odd shapes shared by the tests: batch 1 and 3, H != W, 1 and 3 channels,
stride 1 and 2, valid / same / explicit padding, even and odd kernels,
windows that do not tile the input."""

# (N, C, H, W), filters, kernel, stride, padding
CONV_CASES = [
    ((1, 1, 5, 7), 2, (3, 3), (1, 1), "valid"),
    ((3, 3, 6, 5), 4, (3, 3), (1, 1), "same"),
    ((2, 3, 7, 6), 2, (2, 2), (2, 2), "same"),
    ((1, 3, 8, 5), 3, (4, 4), (2, 2), "same"),
    ((3, 1, 7, 9), 2, (3, 2), (2, 1), (1, 2)),
    ((2, 2, 6, 6), 3, (5, 5), (1, 1), "same"),
    ((1, 2, 9, 7), 1, (4, 3), (3, 2), "valid"),
    # stride 2 with odd padding where the size is not a multiple of the stride, both ways
    ((2, 2, 9, 7), 3, (3, 3), (2, 2), (1, 1)),
    ((1, 3, 8, 11), 2, (4, 3), (2, 2), (3, 1)),
    ((2, 1, 11, 8), 2, (3, 4), (2, 2), (1, 3)),
    ((1, 2, 7, 9), 3, (3, 3), (2, 2), "same"),
    # one input channel, 3x3 'same' on odd sizes: the direct kernel's one-pass path
    ((3, 1, 9, 7), 4, (3, 3), (1, 1), "same"),
]

# (N, C, H, W), pool, stride, padding
POOL_CASES = [
    ((1, 1, 4, 6), (2, 2), (2, 2), "valid"),
    ((3, 3, 7, 7), (2, 2), (2, 2), "valid"),
    ((2, 3, 7, 5), (3, 3), (2, 2), "valid"),
    ((1, 2, 5, 8), (2, 3), (1, 2), "same"),
    ((3, 1, 7, 9), (3, 3), (3, 3), "same"),
    ((2, 2, 6, 7), (3, 2), (2, 2), (1, 1)),
    ((1, 2, 7, 5), (3, 3), (2, 2), (1, 1)),          # windows hanging over the padding
    ((2, 3, 8, 7), (2, 2), (3, 3), "valid"),         # strides longer than the window
    ((3, 2, 9, 8), (2, 3), (3, 4), "same"),
]


def case_id(case):
    return "-".join(str(part).replace(" ", "") for part in case)
