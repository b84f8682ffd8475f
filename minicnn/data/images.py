"""Images kept as their uint8 pixels and read as float32 in [0, 1].

A float32 copy of MNIST's 70,000 images takes 220 MB, four times the pixels themselves; it
was over a third of the default training run's peak memory.  ``Images`` keeps the pixels and
converts only what is read: a batch, a slice, the evaluation set one batch at a time.  Every
read returns float32 pixel / 255, divided in float32, the very values a float32 copy divided
by 255 holds, so a run trains on the same bits either way.
"""
import numpy as np


class Images:
    """uint8 pixels (N, C, H, W) that read as float32 in [0, 1]: ``images[key]`` (any NumPy
    index) and ``np.asarray(images)`` give float32 arrays (``np.asarray(images, dtype)``
    converts those: ask for the pixels themselves as ``images.pixels``); ``gather`` fills a
    batch buffer; ``rows`` cuts a split without converting anything."""
    dtype = np.dtype(np.float32)

    def __init__(self, pixels):
        if pixels.dtype != np.uint8:
            raise TypeError(f"Images: expected uint8 pixels, got {pixels.dtype}")
        self.pixels = pixels

    @property
    def shape(self):
        return self.pixels.shape

    @property
    def ndim(self):
        return self.pixels.ndim

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, key):
        return _scaled(self.pixels[key])

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("Images: reading uint8 pixels as float32 makes a copy; "
                             "call np.asarray(images) without copy=False")
        whole = _scaled(self.pixels)
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def gather(self, indices, out, scratch):
        """out[i] = images[indices[i]]: the batch written into ``out`` (len(indices), C, H,
        W; float32, or float64 holding the float32 values) through ``scratch``, a uint8
        array of its shape, so that a training step allocates nothing.  The indices must be
        in range (``check_indices``, once for a whole epoch's order): not checked here."""
        # mode="clip": "raise" buffers the whole batch first
        np.take(self.pixels, indices, axis=0, out=scratch, mode="clip")
        return np.divide(scratch, np.float32(255), out=out, dtype=np.float32)

    def rows(self, start, stop):
        """Images of rows start..stop, sharing these pixels (how a split is cut)."""
        return Images(self.pixels[start:stop])

    def __repr__(self):
        return f"Images({self.shape}, uint8 read as float32)"


def _scaled(pixels):
    """pixels / 255, divided in float32 (a scalar index gives a 0-d array)."""
    return np.divide(pixels, np.float32(255), dtype=np.float32)


def check_indices(indices, count):
    """IndexError unless every index (a host array) is in [0, count)."""
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= count):
        raise IndexError(f"indices must be in [0, {count}), got "
                         f"{int(indices.min())}..{int(indices.max())}")


def rows(x, start, stop):
    """x[start:stop] of an Images (without converting) or of any array."""
    return x.rows(start, stop) if isinstance(x, Images) else x[start:stop]
