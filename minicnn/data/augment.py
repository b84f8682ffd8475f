"""Cropping, augmentation and per-image standardisation, as the TensorFlow CIFAR-10 tutorial
prepares its images (cifar10_input.py).

Training (``Augment``), for each image:
  1. a random crop of crop x crop pixels (the offset uniform over every place it fits);
  2. a random left-right flip (probability 1/2);
  3. random brightness: + delta, delta uniform in [-63, 63] of 255;
  4. random contrast: each channel's (x - its mean) * factor + its mean, factor uniform in
     [0.2, 1.8];
  5. per-image standardisation: (x - mean) / max(std, 1 / sqrt(values)) over the whole
     image (tf.image.per_image_standardization).
Validation and test (``evaluation_view``): the central crop, then step 5 only.

The images are float32 in [0, 1] here and in [0, 255] in TensorFlow: steps 1-4 are the same
up to that scale, and step 5 removes it (its floor 1 / sqrt(values) becomes
1 / (255 sqrt(values))), so the results agree to rounding.

A sample's random numbers depend only on (seed, epoch, the sample's index in the training
set): each draws from its own Philox stream, like the dropout masks, so a run repeats
exactly on any number of threads or processes.  The training loop (nn/fit.py) calls an
Augment for each batch on a background thread, one batch ahead.
"""
import math

import numpy as np

from . import Dataset, Split
from .images import Images

STREAM = 2**32 - 1      # the augmentation's Philox key word (dropout layers use their index)
BRIGHTNESS = 63 / 255
CONTRAST = (0.2, 1.8)


def standardize(x):
    """Per-image standardisation of images x (N, C, H, W), in place; returns x."""
    values = x[0].size
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x -= mean
    std = np.sqrt((x * x).mean(axis=(1, 2, 3), keepdims=True))
    x /= np.maximum(std, 1.0 / (255.0 * math.sqrt(values)))
    return x


def central_crop(x, crop):
    """The central crop x crop pixels of images (N, C, H, W), as TensorFlow's
    resize_image_with_crop_or_pad crops (the offset rounded down)."""
    h, w = x.shape[2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    return x[:, :, top:top + crop, left:left + crop]


def evaluation_view(images, crop):
    """float32 standardised central crops (N, C, crop, crop) of images (N, C, H, W)."""
    cropped = central_crop(images, crop)        # of Images: a new float32 array already
    return standardize(cropped if isinstance(images, Images) else
                       np.array(cropped, dtype=np.float32))


def check_crop(crop, shape):
    """A crop that fits images of ``shape`` (C, H, W); ValueError saying what does not."""
    if crop is not None and crop > min(shape[1:]):
        raise ValueError(f"--crop {crop} is larger than the {shape[1]}x{shape[2]} images; "
                         f"give at most {min(shape[1:])}")


class Augment:
    """augment(indices, epoch) -> float32 (n, C, crop, crop): the tutorial's distorted
    training images of images[indices] (host arrays)."""

    def __init__(self, images, crop, seed=0):
        self.images = images
        self.crop = crop
        self.key = np.random.SeedSequence([seed, STREAM]).generate_state(2, np.uint64)
        self.offset = np.arange(crop)

    def draws(self, indices, epoch):
        """(n, 5) uniforms in [0, 1) per sample: crop row, crop column, flip, brightness,
        contrast."""
        out = np.empty((len(indices), 5))
        for i, index in enumerate(indices):
            bits = np.random.Philox(key=self.key, counter=[0, 0, int(index), epoch])
            out[i] = np.random.Generator(bits).random(5)
        return out

    def __call__(self, indices, epoch):
        c, h, w = self.images.shape[1:]
        u = self.draws(indices, epoch)
        top = np.floor(u[:, 0] * (h - self.crop + 1)).astype(np.intp)
        left = np.floor(u[:, 1] * (w - self.crop + 1)).astype(np.intp)
        rows = top[:, None] + self.offset                           # (n, crop)
        cols = left[:, None] + self.offset
        flip = u[:, 2] < 0.5
        cols[flip] = cols[flip, ::-1]
        x = self.images[np.asarray(indices)[:, None, None, None], np.arange(c)[None, :, None, None],
                        rows[:, None, :, None], cols[:, None, None, :]].astype(np.float32)
        x += ((2 * u[:, 3] - 1) * BRIGHTNESS).astype(np.float32)[:, None, None, None]
        factor = (CONTRAST[0] + u[:, 4] * (CONTRAST[1] - CONTRAST[0])).astype(np.float32)
        mean = x.mean(axis=(2, 3), keepdims=True)
        x -= mean
        x *= factor[:, None, None, None]
        x += mean
        return standardize(x)


def crop_view(data, crop, augment=False, seed=0):
    """(Dataset, augment or None) for a run on crop x crop crops (the images' own size when
    crop is None): validation and test as standardised central crops; training as an
    Augment of the full images (with augment), or as their standardised central crops."""
    shape = data.train.x.shape[1:]
    crop = crop or min(shape[1:])
    check_crop(crop, shape)
    val, test = (Split(evaluation_view(s.x, crop), s.y) for s in (data.val, data.test))
    if augment:
        return Dataset(data.train, val, test), Augment(data.train.x, crop, seed)
    return Dataset(Split(evaluation_view(data.train.x, crop), data.train.y), val, test), None
