"""Residual learning: a small live degradation experiment, and ResNet50's anatomy.

Two halves, both taught in the chapter *Background: residual networks*
(``chapters/resnet_background``):

- **The degradation experiment.** He et al. (2015) saw that a deeper "plain" network
  (layers simply stacked) reached a *higher training error* than a shallower one, and that
  adding identity shortcuts fixed it. We repeat that on scikit-learn's handwritten digits
  with small fully connected networks written in NumPy: a plain and a residual network of
  each depth, trained identically from the same seed, with batch normalization in both as
  in the paper. NumPy because it is fast enough to run live on a CPU in seconds and leaves
  nothing hidden: the forward pass, the backward pass and the update are all below, and
  ``tests/test_resnet.py`` checks the gradients against finite differences.
- **ResNet50's structure**, read from the real Keras model: its stages, its bottleneck
  blocks, its parameter counts and where ``conv5_block3_out`` (the layer Grad-CAM uses) sits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from woofhelpers.profiles import Profile

# --- data -----------------------------------------------------------------------------------


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> list[np.ndarray]:
    """scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes), pixels scaled to 0–1.

    Returns ``x_train, x_test, y_train, y_test``: ``x`` is float32 of shape (n, 64), ``y``
    int64 class indices; the split is stratified and fixed by ``seed``. The data ships with
    scikit-learn, so nothing is downloaded.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction}: must be between 0 and 1, e.g. 0.2")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel values are 0..16
    return train_test_split(
        x, digits.target.astype(np.int64), test_size=test_fraction, stratify=digits.target, random_state=seed
    )


# --- a plain or residual multilayer perceptron with batch normalization -------------------------

_BN_EPSILON = 1e-5


@dataclass
class MLP:
    """A fully connected network of ``depth`` weight layers, counted as He et al. count them.

    Layer 0 maps the input to ``width`` units; then ``depth - 2`` hidden layers of
    ``width`` units; then a linear output layer to the classes. Every hidden weight layer is
    followed by batch normalization (``gammas``, ``betas``) and, except where a shortcut
    joins, a ReLU. In a residual network the hidden layers come in pairs, each pair a block
    ``h -> relu(h + BN(W2 · relu(BN(W1 · h))))``: the pair learns a *change* to ``h``.
    """

    residual: bool
    weights: list[np.ndarray]  # depth - 1 arrays: (n_in, width), then (width, width) ...
    gammas: list[np.ndarray]  # one (width,) per weight layer before the output layer
    betas: list[np.ndarray]
    output_weights: np.ndarray  # (width, n_classes)
    output_bias: np.ndarray  # (n_classes,)
    running_means: list[np.ndarray] = field(default_factory=list)
    running_vars: list[np.ndarray] = field(default_factory=list)

    @property
    def depth(self) -> int:
        """Number of weight layers, output layer included."""
        return len(self.weights) + 1

    def parameters(self) -> list[np.ndarray]:
        """Every trainable array, in a fixed order (gradients come in the same order)."""
        return [*self.weights, *self.gammas, *self.betas, self.output_weights, self.output_bias]

    def parameter_count(self) -> int:
        return int(sum(p.size for p in self.parameters()))


def make_mlp(
    depth: int, width: int = 32, residual: bool = False, n_inputs: int = 64, n_classes: int = 10, seed: int = 0
) -> MLP:
    """A freshly initialized plain or residual :class:`MLP` (He-normal weights, as the paper).

    ``depth`` counts weight layers (at least 2); a residual network needs an even number of
    hidden layers, i.e. an even ``depth``, because its hidden layers come in pairs.
    """
    if depth < 2:
        raise ValueError(f"depth={depth}: a network needs at least 2 weight layers (input and output)")
    if residual and depth % 2:
        raise ValueError(f"depth={depth}: a residual network needs an even depth (its hidden layers come in pairs)")
    if width < 1:
        raise ValueError(f"width={width}: must be at least 1")
    rng = np.random.default_rng(seed)
    sizes = [n_inputs] + [width] * (depth - 1)

    def he_normal(n_in, n_out):
        return (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)

    weights = [he_normal(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return MLP(
        residual=residual,
        weights=weights,
        gammas=[np.ones(width, np.float32) for _ in weights],
        betas=[np.zeros(width, np.float32) for _ in weights],
        output_weights=he_normal(width, n_classes) / np.sqrt(2.0),  # no ReLU after it
        output_bias=np.zeros(n_classes, np.float32),
        running_means=[np.zeros(width, np.float32) for _ in weights],
        running_vars=[np.ones(width, np.float32) for _ in weights],
    )


def _forward(net: MLP, x: np.ndarray, training: bool, bn_momentum: float = 0.9):
    """Logits of shape (n, n_classes), and what the backward pass needs (when training)."""
    tape = []

    def dense_bn(h, i):
        z = h @ net.weights[i]
        if training:
            mean, var = z.mean(axis=0), z.var(axis=0)
            net.running_means[i] = bn_momentum * net.running_means[i] + (1 - bn_momentum) * mean
            net.running_vars[i] = bn_momentum * net.running_vars[i] + (1 - bn_momentum) * var
        else:
            mean, var = net.running_means[i], net.running_vars[i]
        inv_std = 1.0 / np.sqrt(var + _BN_EPSILON)
        z_hat = (z - mean) * inv_std
        tape.append(("dense_bn", i, h, z_hat, inv_std))
        return net.gammas[i] * z_hat + net.betas[i]

    def relu(u):
        out = np.maximum(u, 0)
        tape.append(("relu", out > 0))
        return out

    h = relu(dense_bn(x, 0))
    i = 1
    while i < len(net.weights):
        if net.residual:
            tape.append(("block_start",))
            branch = dense_bn(relu(dense_bn(h, i)), i + 1)
            tape.append(("add",))
            h = relu(h + branch)
            i += 2
        else:
            h = relu(dense_bn(h, i))
            i += 1
    tape.append(("output", h))
    return h @ net.output_weights + net.output_bias, tape


def predict(net: MLP, x: np.ndarray) -> np.ndarray:
    """Class probabilities, shape (n, n_classes), in inference mode (running BN statistics)."""
    logits, _ = _forward(net, x, training=False)
    return _softmax(logits)


def _softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def loss_and_gradients(net: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Mean cross-entropy on a batch in training mode, and its gradient for every array of
    ``net.parameters()`` (same order). Updates the running BN statistics as a training step does."""
    logits, tape = _forward(net, x, training=True)
    n = len(y)
    probs = _softmax(logits)
    loss = float(-np.log(probs[np.arange(n), y] + 1e-12).mean())
    d_logits = probs
    d_logits[np.arange(n), y] -= 1
    d_logits /= n

    grad_w = [None] * len(net.weights)
    grad_gamma = [None] * len(net.weights)
    grad_beta = [None] * len(net.weights)
    _, h_last = tape.pop()
    grad_out_w = h_last.T @ d_logits
    grad_out_b = d_logits.sum(axis=0)
    d_h = d_logits @ net.output_weights.T

    # Walk the tape backwards. A residual block's tape reads: block_start, dense_bn (i),
    # relu, dense_bn (i+1), add, relu. At "add" the gradient of the sum h + branch is kept;
    # at "block_start" it is added back: the shortcut carries it to the block's input
    # unchanged, beside whatever came through the branch.
    shortcut_grads = []
    while tape:
        entry = tape.pop()
        kind = entry[0]
        if kind == "relu":
            d_h = d_h * entry[1]
        elif kind == "add":
            shortcut_grads.append(d_h)
        elif kind == "dense_bn":
            _, i, h_in, z_hat, inv_std = entry
            grad_gamma[i] = (d_h * z_hat).sum(axis=0)
            grad_beta[i] = d_h.sum(axis=0)
            d_z_hat = d_h * net.gammas[i]
            m = d_z_hat.shape[0]
            d_z = inv_std / m * (m * d_z_hat - d_z_hat.sum(axis=0) - z_hat * (d_z_hat * z_hat).sum(axis=0))
            grad_w[i] = h_in.T @ d_z
            d_h = d_z @ net.weights[i].T
        elif kind == "block_start":
            d_h = d_h + shortcut_grads.pop()
    return loss, [*grad_w, *grad_gamma, *grad_beta, grad_out_w, grad_out_b]


def error_rate(net: MLP, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` classified wrongly (inference mode)."""
    return float((predict(net, x).argmax(axis=1) != y).mean())


def train(
    net: MLP,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int = 64,
    learning_rate: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
) -> list[float]:
    """Train ``net`` in place with mini-batch SGD and momentum; return the training error
    after each epoch (measured on all of ``x`` in inference mode)."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs}, batch_size={batch_size}: both must be at least 1")
    rng = np.random.default_rng(seed)
    params = net.parameters()
    velocities = [np.zeros_like(p) for p in params]
    curve = []
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(order) - batch_size + 1, batch_size):  # whole batches only (BN)
            batch = order[start : start + batch_size]
            _, grads = loss_and_gradients(net, x[batch], y[batch])
            for param, grad, velocity in zip(params, grads, velocities, strict=True):
                velocity *= momentum
                velocity -= learning_rate * grad
                param += velocity  # in place: net's arrays change
        curve.append(error_rate(net, x, y))
    return curve


# How long the experiment runs in each profile. The smoke profile keeps the chapter under a
# minute on a 2-core CPU and already shows the effect; the full profile adds depths up to the
# paper's 56 layers and trains six times longer (a few minutes on a CPU; no GPU needed).
DEGRADATION_SETTINGS = {
    "smoke": {"depths": (2, 12, 24), "epochs": 5},
    "full": {"depths": (2, 8, 14, 20, 32, 44, 56), "epochs": 30},
}


def degradation_settings(profile: Profile) -> dict:
    """The depths and epochs :func:`degradation_experiment` runs in ``profile``
    (a ``wh.profiles.Profile``): short in ``smoke``, the proper run in ``full``, where the
    profile's ``epochs`` (``WOOF_EPOCHS``), when set, shortens it as it shortens the trials.
    (The smoke profile's ``epochs`` sizes its trials, not this experiment.)"""
    if profile.name not in DEGRADATION_SETTINGS:
        raise ValueError(
            f"no degradation settings for profile {profile.name!r}; choose one of {list(DEGRADATION_SETTINGS)}"
        )
    settings = dict(DEGRADATION_SETTINGS[profile.name])
    if profile.name == "full" and profile.epochs is not None:
        settings["epochs"] = profile.epochs
    return settings


@dataclass
class DegradationResult:
    """What :func:`degradation_experiment` measured."""

    table: object  # pandas DataFrame: depth, network, parameters, train_error, test_error
    curves: dict[tuple[str, int], list[float]]  # (network, depth) -> training error per epoch
    epochs: int

    def percentages(self) -> pd.DataFrame:
        """The table for reading: one row per depth and network, its parameters, and its
        training and test error in percent to one decimal.

        Its digits vary from CPU to CPU: NumPy's matrix products go to OpenBLAS, whose
        kernels (AVX2, AVX-512) round differently in the last bit, and a few hundred steps
        of training turn that into different errors. :meth:`verdict` does not vary."""
        table = self.table.set_index(["depth", "network"])
        return table[["parameters"]].assign(
            **{
                "training error %": (100 * table["train_error"]).round(1),
                "test error %": (100 * table["test_error"]).round(1),
            }
        )

    def verdict(self) -> str:
        """The lesson in words, one line per depth: which network reached the lower training
        error. It names no digits, so it reads the same on every machine as long as the
        experiment's outcome is the same (the table's digits do not; see :meth:`percentages`).
        At depth 2 (no hidden layers, so no shortcut) plain and residual are one network."""
        errors = self.table.set_index(["depth", "network"])["train_error"]
        lines = ["Which network ends with the lower training error:"]
        for depth in sorted(self.table["depth"].unique()):
            plain, residual = errors[depth, "plain"], errors[depth, "residual"]
            if depth == 2:
                same = "equal, as they must be" if plain == residual else "DIFFERENT: not like for like"
                outcome = f"one network (no shortcut), errors {same}"
            elif residual < plain:
                outcome = "residual"
            elif plain < residual:
                outcome = "plain"
            else:
                outcome = "neither (equal errors)"
            lines.append(f"  depth {depth:>2}: {outcome}")
        return "\n".join(lines)


def degradation_experiment(
    depths: tuple[int, ...] = (2, 8, 20, 32),
    epochs: int = 30,
    width: int = 32,
    batch_size: int = 64,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> DegradationResult:
    """Train a plain and a residual :class:`MLP` of each depth on the digits, identically.

    Same data, same initialization seed, same optimizer, same number of epochs; the only
    difference is the shortcuts. Returns the final training and test error of each network
    and each network's training-error curve.
    """
    import pandas as pd

    if any(d % 2 for d in depths):
        raise ValueError(f"depths {depths}: use even depths, so that plain and residual networks match")
    x_train, x_test, y_train, y_test = digits_split(seed=seed)
    rows, curves = [], {}
    for depth in depths:
        for network in ("plain", "residual"):
            net = make_mlp(depth, width, residual=network == "residual", seed=seed)
            curves[(network, depth)] = train(net, x_train, y_train, epochs, batch_size, learning_rate, seed=seed)
            rows.append(
                {
                    "depth": depth,
                    "network": network,
                    "parameters": net.parameter_count(),
                    "train_error": round(error_rate(net, x_train, y_train), 4),
                    "test_error": round(error_rate(net, x_test, y_test), 4),
                }
            )
    return DegradationResult(pd.DataFrame(rows), curves, epochs)


# --- ResNet50's structure --------------------------------------------------------------------

_BLOCK = re.compile(r"^(conv(\d)_block(\d+))_")


def resnet50(include_top: bool = True, input_shape: tuple[int, int, int] = (224, 224, 3)) -> keras.Model:
    """Keras' ResNet50 with random weights (``weights=None``): the same layers and shapes as
    the ImageNet-trained one, and building it downloads nothing. With ``include_top`` it
    ends, as on ImageNet, in average pooling and a 1000-class softmax layer."""
    import keras

    return keras.applications.ResNet50(weights=None, include_top=include_top, input_shape=input_shape)


def _shape(layer) -> tuple:
    return tuple(layer.output.shape[1:])


def stages(model: keras.Model) -> pd.DataFrame:
    """One row per stage of a Keras ResNet (``conv1`` stem, then ``conv2`` to ``conv5``, then
    the classifier if the model has one): its bottleneck blocks, output shape (height, width,
    channels), and parameters. The parameters add up to ``model.count_params()``.

    Raises ``ValueError`` if ``model`` has no ``convN_blockM_`` layers (not a Keras ResNet).
    """
    import pandas as pd

    rows: dict[str, dict] = {}
    for layer in model.layers:
        match = _BLOCK.match(layer.name)
        if match:
            stage = f"conv{match.group(2)}"
        elif layer.name.startswith(("conv1_", "pool1_")):
            stage = "conv1 (stem)"
        elif layer.name in ("avg_pool", "predictions"):
            stage = "top (classifier)"
        else:
            continue
        row = rows.setdefault(stage, {"stage": stage, "blocks": set(), "parameters": 0})
        if match:
            row["blocks"].add(match.group(1))
        row["parameters"] += int(layer.count_params())
        row["output"] = _shape(layer)
    if not any(r["blocks"] for r in rows.values()):
        raise ValueError(f"{model.name!r} has no convN_blockM_ layers: not a Keras ResNet")
    table = pd.DataFrame(
        [
            {
                "stage": r["stage"],
                "blocks": len(r["blocks"]),
                "output (h, w, c)": r["output"],
                "parameters": r["parameters"],
            }
            for r in rows.values()
        ]
    ).set_index("stage")
    return table


def block_layers(model: keras.Model, block: str = "conv2_block1") -> pd.DataFrame:
    """The layers of one bottleneck block (e.g. ``"conv2_block1"``): name, type, output
    shape, parameters. Raises ``ValueError`` naming the blocks that exist if it does not."""
    import pandas as pd

    found = [layer for layer in model.layers if layer.name.startswith(block + "_")]
    if not found:
        blocks = sorted({m.group(1) for layer in model.layers if (m := _BLOCK.match(layer.name))})
        raise ValueError(f"no block {block!r} in {model.name!r}; its blocks are {blocks}")
    return pd.DataFrame(
        [
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output": _shape(layer),
                "parameters": int(layer.count_params()),
            }
            for layer in found
        ]
    ).set_index("layer")


def locate(model: keras.Model, layer_name: str = "conv5_block3_out") -> dict:
    """Where a layer sits: its index among ``model.layers``, how many layers come after it,
    its output shape, and the layers that read its output. Used to show where Grad-CAM looks."""
    import keras

    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"no layer {layer_name!r} in {model.name!r}; the last layers are {names[-5:]}")
    index = names.index(layer_name)
    layer = model.layers[index]
    readers = [
        other.name
        for other in model.layers[index + 1 :]
        if any(tensor is layer.output for tensor in keras.tree.flatten(other.input))
    ]
    return {
        "layer": layer_name,
        "index": index,
        "of": len(names),
        "layers after it": len(names) - index - 1,
        "output (h, w, c)": _shape(layer),
        "read by": readers,
    }
