"""What the hardware makes worth using: XLA and mixed precision on GPUs, neither on a CPU.

On a GPU, XLA compiles the training and feature steps, and mixed precision (float16 compute, float32
weights) is used on GPUs with tensor cores (compute capability 7.0 or newer). On a CPU both stay off:
XLA does not speed up these convolutions there and float16 is emulated, slower. A model trained in
mixed precision is always saved with float32 layers, so `best.keras` loads anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import keras

from tlcore.models import PREDICTIONS_LAYER_NAME, get_base, get_head, preprocessing_layers


@dataclass(frozen=True)
class Acceleration:
    """What the hardware makes worth using.

    jit_compile: compile training and feature steps with XLA.
    mixed_precision: compute in float16 with float32 weights (`"mixed_float16"`).
    """

    jit_compile: bool = False
    mixed_precision: bool = False


def detect_acceleration() -> Acceleration:
    """XLA on any GPU, mixed precision on GPUs with tensor cores (compute capability 7.0+), neither on a CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Acceleration()
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
    return Acceleration(jit_compile=True, mixed_precision=tuple(capability) >= (7, 0))


def set_compute_policy(model: keras.Model, policy: str) -> None:
    """Give every layer of `model` the dtype policy `policy` (`"mixed_float16"` or `"float32"`).

    The classifier keeps float32 whatever the policy, so its softmax stays numerically sound. Only
    the compute dtype changes: the variables stay float32, so switching back loses nothing.
    """
    layers = [*preprocessing_layers(model), *get_base(model).layers[1:], *get_head(model).layers[1:]]
    for layer in layers:
        layer.dtype_policy = "float32" if layer.name == PREDICTIONS_LAYER_NAME else policy


@contextmanager
def float32_layers(model: keras.Model, mixed: bool) -> Iterator[None]:
    """Within the block, `model`'s layers say float32 (for saving a model that loads anywhere)."""
    if mixed:
        set_compute_policy(model, "float32")
    try:
        yield
    finally:
        if mixed:
            set_compute_policy(model, "mixed_float16")
