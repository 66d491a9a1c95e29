"""wh.hardware: the process-wide settings a run touches are set in contexts that put them
back, and no other module sets them."""

import random
import re
from pathlib import Path

import numpy as np
import pytest

import woofhelpers as wh

PACKAGE = Path(wh.__file__).resolve().parent
# Calls that change a process-wide seed, the dtype policy or TensorFlow's logger level.
GLOBAL_SETTERS = re.compile(
    r"set_random_seed\(|tf\.random\.set_seed\(|np\.random\.seed\(|random\.seed\(|set_dtype_policy\(|\.setLevel\("
)


def test_only_hardware_sets_process_wide_seeds_policies_or_log_levels():
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name != "hardware.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if GLOBAL_SETTERS.search(line) and not line.lstrip().startswith("#")
    ]
    assert not offenders, "set these through a wh.hardware context that restores them:\n" + "\n".join(offenders)


def _global_state():
    from tensorflow.python.eager import context

    return random.getstate(), np.random.get_state()[1].copy(), context.global_seed()


def test_seeded_sets_every_seed_inside_and_restores_each_after(tf):
    import keras
    from keras.src.backend.common import global_state

    tf.random.set_seed(7)
    np.random.seed(3)
    before = _global_state()
    keras_seed = global_state.get_global_attribute("global_random_seed")
    with wh.hardware.seeded(123):
        first = (random.random(), np.random.rand(), float(keras.random.uniform(())))
    assert global_state.get_global_attribute("global_random_seed") == keras_seed
    assert _global_state()[0] == before[0]
    np.testing.assert_array_equal(_global_state()[1], before[1])
    assert _global_state()[2] == 7
    with wh.hardware.seeded(123):
        again = (random.random(), np.random.rand(), float(keras.random.uniform(())))
    assert first == again  # the same draws inside, every time


def test_seeded_restores_even_when_the_block_fails(tf):
    tf.random.set_seed(None)
    state = np.random.get_state()[1].copy()
    with pytest.raises(RuntimeError), wh.hardware.seeded(5):
        raise RuntimeError("boom")
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    assert _global_state()[2] is None


def test_a_seeded_library_call_leaves_the_callers_randomness_alone(tf):
    np.random.seed(11)
    expected = np.random.rand(3)
    np.random.seed(11)
    wh.ablations.small_batchnorm_model(image_size_px=32, seed=0)  # builds under seed 0
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_dtype_policy_and_quiet_log_are_put_back(tf):
    import keras

    before = keras.config.dtype_policy().name
    with wh.hardware.dtype_policy("mixed_float16"):
        assert keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == before
    logger = tf.get_logger()
    level = logger.level
    with wh.hardware.quiet_tf_log():
        assert logger.level == 40  # ERROR
    assert logger.level == level
