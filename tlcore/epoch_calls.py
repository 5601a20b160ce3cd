"""`fit` for a model whose epoch takes milliseconds: a head trained on cached features.

Keras's `fit` runs one traced call per batch and validates through `evaluate`, which makes its own
iterator, resets its metrics and calls its callbacks batch by batch. For one Dense layer on cached
features that bookkeeping costs more than the arithmetic: about 0.1 s an epoch against 0.01 s of
compute on a 2-core machine, and the tracing of two step functions before the first epoch.
`fit_in_epoch_calls` runs each epoch's training steps in one call of one traced function, and its
validation in one more. The steps are Keras's own `train_step` and `test_step`, over the same batches
in the same order, so the losses, metrics and weights are those `fit` gives; the callbacks then get
the calls `fit` makes, batch by batch, each with that batch's logs.

One difference a user can see: a stop request takes effect when the epoch under way ends (a few
milliseconds later), not after its next batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


def known_steps(data: tf.data.Dataset) -> int | None:
    """How many batches one pass over `data` yields, when TensorFlow knows it without iterating."""
    import tensorflow as tf

    steps = int(data.cardinality())
    return steps if steps > 0 and steps != tf.data.INFINITE_CARDINALITY else None


def fit_in_epoch_calls(
    model: keras.Model,
    train_data: tf.data.Dataset,
    val_data: tf.data.Dataset,
    initial_epoch: int,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback],
) -> None:
    """Train the compiled, built `model` from `initial_epoch` to `epochs` as `model.fit` would.

    Both datasets must yield `(inputs, labels)` batches and know their length (`known_steps`).
    """
    import keras

    train_steps, val_steps = known_steps(train_data), known_steps(val_data)
    if train_steps is None or val_steps is None:
        raise ValueError(f"Both datasets must know how many batches they hold; received {train_steps} and {val_steps}.")
    names = list(model.get_metrics_result())
    train_epoch = _epoch_function(model.train_step, names)
    test_epoch = _epoch_function(model.test_step, names)
    calls = keras.callbacks.CallbackList(list(callbacks), model=model)
    model.stop_training = False
    calls.on_train_begin()
    epoch_logs: dict[str, float] = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        calls.on_epoch_begin(epoch)
        steps = train_epoch(iter(train_data), train_steps)
        # Keras's `fit` opens a second iterator at each epoch's end and never reads it; a reshuffling
        # dataset draws its next order then, so this one must too to see the same batches.
        iter(train_data)
        for step, logs in enumerate(_per_step(steps, names)):
            calls.on_train_batch_begin(step)
            calls.on_train_batch_end(step, logs)
            epoch_logs = logs
        model.reset_metrics()
        calls.on_test_begin()
        val_logs: dict[str, float] = {}
        for step, logs in enumerate(_per_step(test_epoch(iter(val_data), val_steps), names)):
            calls.on_test_batch_begin(step)
            calls.on_test_batch_end(step, logs)
            val_logs = logs
        calls.on_test_end(val_logs)
        epoch_logs = {**epoch_logs, **{f"val_{name}": value for name, value in val_logs.items()}}
        calls.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    if epochs > initial_epoch:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    calls.on_train_end(logs=epoch_logs)


def _epoch_function(step: Any, names: list[str]) -> Any:
    """A traced function that runs `step` on the next `steps` batches of an iterator and returns every
    step's logs (the metrics' running values, as `fit` reports them), one row per step."""
    import tensorflow as tf

    def run(iterator: tf.data.Iterator, steps: int) -> dict[str, tf.Tensor]:
        def body(index: tf.Tensor, rows: tuple[tf.TensorArray, ...]) -> tuple[tf.Tensor, tuple[tf.TensorArray, ...]]:
            logs = step(iterator.get_next())
            written = (row.write(index, tf.cast(logs[name], tf.float32)) for row, name in zip(rows, names, strict=True))
            return index + 1, tuple(written)

        empty = tuple(tf.TensorArray(tf.float32, size=steps) for _ in names)
        _, rows = tf.while_loop(lambda index, _: index < steps, body, (tf.constant(0), empty))
        return {name: row.stack() for row, name in zip(rows, names, strict=True)}

    # Like Keras's own step functions, traced as written: AutoGraph would convert Keras's step too.
    return tf.function(tf.autograph.experimental.do_not_convert(run), reduce_retracing=True)


def _per_step(columns: dict[str, tf.Tensor], names: list[str]) -> list[dict[str, float]]:
    values = {name: columns[name].numpy().tolist() for name in names}
    return [{name: values[name][row] for name in names} for row in range(len(values[names[0]]))]
