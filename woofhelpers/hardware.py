"""The machine a run uses, and the process-wide settings it touches, each in a context that
puts it back.

- :func:`import_tensorflow`: TensorFlow without its C++ start-up notices. TensorFlow's
  native code writes lines such as ``I0000 ... cudart_stub.cc:31] Could not find cuda
  drivers`` straight to file descriptor 2 while it loads, before ``TF_CPP_MIN_LOG_LEVEL``
  can silence them, and Jupyter copies that descriptor into the cell's output. During the
  import descriptor 2 points at a temporary file; every line that is not such a notice is
  passed on, so real errors still show. ``import woofhelpers`` calls it.
- :func:`quiet_tf_log`: TensorFlow's Python logger at ``ERROR`` for a block (its
  "retracing" warnings are expected when a chapter builds several models).
- :func:`seeded`: Python's, NumPy's, TensorFlow's and Keras' global seeds set for a block,
  then put back, so a library call never changes the randomness of what runs after it.
- :func:`dtype_policy`: Keras' global dtype policy (``mixed_float16`` for mixed precision)
  for a block.
- :func:`choose_strategy` and :func:`on_gpu`: which ``tf.distribute`` strategy and device
  a trial trains on.

Used by the trial engine (*Trial 1* ... *Trial 5*) and by ``import woofhelpers``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

    import tensorflow as tf

_NOTICE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] .*"
    r"|\d{4}-\d\d-\d\d [\d:.]+: [IW] tensorflow/.*)$"
)


def import_tensorflow() -> ModuleType:
    """Import and return ``tensorflow`` with its start-up notices filtered out."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line and not _NOTICE.match(line):
                    print(line, file=sys.stderr)
    return tensorflow


@contextlib.contextmanager
def quiet_tf_log() -> Iterator[None]:
    """TensorFlow's Python logger at ``ERROR`` inside the block, as it was after it. Each
    trial builds new models, and TensorFlow warns about "retracing" once several have
    predicted; in a notebook that warning goes to the output. It is expected here."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block, every global seed is ``seed`` (``keras.utils.set_random_seed``:
    Python's ``random``, NumPy's global generator, TensorFlow's global seed and Keras' seed
    generator); after it, each is as it was. What is built and drawn inside the block is
    the same on every run; what runs after it is not changed by it."""
    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.eager import context

    python_state, numpy_state, tf_seed = random.getstate(), np.random.get_state(), context.global_seed()
    keras_state = _keras_seed_state()
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        tf.random.set_seed(tf_seed)
        _restore_keras_seed_state(keras_state)


# Where Keras 3 keeps the seed that keras.utils.set_random_seed stores and its global
# SeedGenerator (keras/src/utils/rng_utils.py, keras/src/random/seed_generator.py).
_KERAS_SEED_ATTRIBUTES = ("global_random_seed", "global_seed_generator")


def _keras_seed_state() -> dict | None:
    """Keras' global seed state, or ``None`` where this Keras keeps it elsewhere (then it
    is not restored; Python's, NumPy's and TensorFlow's seeds still are)."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:
        return None
    return {name: global_state.get_global_attribute(name) for name in _KERAS_SEED_ATTRIBUTES}


def _restore_keras_seed_state(state: dict | None) -> None:
    if state is None:
        return
    from keras.src.backend.common import global_state

    for name, value in state.items():
        global_state.set_global_attribute(name, value)


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras' global dtype policy is ``name`` (``"float32"`` or ``"mixed_float16"``) inside
    the block, and as it was after it. Layers and models take the policy in force when
    they are created."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def choose_strategy() -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy for this machine: ``TPUStrategy`` on a Colab TPU,
    ``MirroredStrategy`` with several GPUs, else the default (one device)."""
    import tensorflow as tf

    if any(os.environ.get(v) for v in ("COLAB_TPU_ADDR", "TPU_NAME")):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def on_gpu() -> bool:
    """Whether TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
