"""Benchmarks for the Woof course: every figure is a ratio measured side by side in one run.

    .venv/bin/python benchmarks/bench.py                 # everything but the full test suite
    .venv/bin/python benchmarks/bench.py --suite-total   # ... and time the README's `make test` command
    .venv/bin/python benchmarks/bench.py --quick         # a reduced run that proves the script works

Sections (``--only pipeline,head,memory,suite,gpu,crop``):

1. pipeline: images/s delivered as 160 px batches from JPEGs whose shortest side is 320 px:
   (a) ``keras.utils.image_dataset_from_directory``, (b) ``wh.pipeline.dataset`` (no cache;
   file cache cold; file cache warm), (c) parallel ``tf.io.decode_jpeg`` alone.
2. head: one epoch training the head on cached base features vs one epoch through the
   frozen ResNet50 base.
3. memory: peak resident memory of a smoke training run on 2,000 vs 200 images, each in
   its own process.
4. suite: per-chapter execution time in the smoke profile (chapters are executed from a
   copy, so nothing in the working tree changes) and, with ``--suite-total``, the time of
   ``python -m pytest`` (what ``make test`` runs).
5. gpu: ResNet50 training step, float32 vs mixed precision + XLA (only with a GPU).
6. crop: cutting a centred square while the JPEG is decoded (``decode_and_crop_jpeg``) vs
   decoding the whole JPEG and slicing; and ``wh.pipeline.dataset`` with ``crop="centre"``
   and ``crop="random"`` vs the default ``"squash"``.

Variants are alternated (A B A B ...) and each ratio is the median of per-round ratios,
because absolute times on a shared machine drift. Times are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import woofhelpers as wh  # noqa: E402

AUTOTUNE = -1
# 22 real Imagewoof-320 photos, present only in the course's development environment; the
# pipeline section measures them too when they are there (never copied into the project).
REAL_SAMPLE = Path(os.environ.get("WOOF_REAL_SAMPLE", REPO.parent / "shared" / "data" / "imagewoof-real-sample"))


@dataclass
class Row:
    """One line of the results table: what was compared, the medians, the ratio, the target."""

    section: str
    what: str
    a: str  # median of the numerator variant, with unit
    b: str  # median of the denominator variant, with unit
    ratio: float
    cpu_ratio: float | None = None  # the same ratio computed from this process's CPU time
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        cpu = "" if row.cpu_ratio is None else f", CPU-time ratio {row.cpu_ratio:.2f}x"
        print(f"  -> {row.what}: {row.ratio:.2f}x ({row.a} vs {row.b}{cpu})", flush=True)

    def table(self) -> str:
        head = "| section | comparison (A / B) | A | B | ratio | ratio of CPU time | target | met |"
        lines = [head, "|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            cpu = "" if r.cpu_ratio is None else f"{r.cpu_ratio:.2f}x"
            lines.append(f"| {r.section} | {r.what} | {r.a} | {r.b} | {r.ratio:.2f}x | {cpu} | {r.target} | {met} |")
        return "\n".join(lines)


def _median_ratio(nums: list[float], dens: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(nums, dens, strict=True))


def machine() -> str:
    import keras
    import tensorflow as tf

    load = os.getloadavg()
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()} {platform.release()},"
        f" Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__},"
        f" GPUs: {', '.join(g.name for g in gpus) or 'none'}; load average at start"
        f" {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)"
    )


# --- data -------------------------------------------------------------------------------------


def bench_data(folder: Path, images: int, shortest_side_px: int) -> wh.splits.Split:
    """A synthetic Imagewoof with ``images`` train files, all in the split's train part."""
    per_class = max(1, images // 10)
    root = wh.synthetic.generate(
        folder / f"synthetic-{per_class}x1-{shortest_side_px}px",
        train_per_class=per_class,
        val_per_class=1,
        shortest_side_px=shortest_side_px,
        seed=0,
    )
    train = tuple(p.relative_to(root).as_posix() for p in sorted((root / "train").glob("*/*.JPEG")))
    return wh.splits.Split(name="bench", root=root, parts={"train": train, "validation": (), "test": ()})


def _epoch_images_per_s(ds) -> tuple[float, float]:
    """Iterate one epoch of batches; return images per second (wall clock) and the
    milliseconds of this process's CPU time per image (steadier on a shared machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    for batch in ds:
        first = batch[0] if isinstance(batch, tuple) else batch
        n += int(first.shape[0])
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1e3


# --- 1. input pipeline ------------------------------------------------------------------------


def real_sample_split(sample: Path, copies: int, scratch: Path) -> wh.splits.Split:
    """A split of ``copies`` links to each real photo of ``sample`` (``train/<wnid>/*.JPEG``
    and ``val/<wnid>/*.JPEG``), laid out as one folder per class, in ``scratch``. The photos
    stay where they are: only links are made, outside the repository's data."""
    links = []
    for photo in sorted(sample.glob("*/*/*.JPEG")):
        for i in range(copies):
            link = scratch / "train" / photo.parent.name / f"{photo.parent.parent.name}-{i}-{photo.name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(photo.resolve())
            links.append(link.relative_to(scratch).as_posix())
    parts = {"train": tuple(sorted(links)), "validation": (), "test": ()}  # Keras's order
    return wh.splits.Split(name="real-sample", root=scratch, parts=parts)


def bench_pipeline(
    results: Results, split, rounds: int, size: int, batch: int, scratch: Path, label: str = "synthetic JPEGs"
) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    root = split.root
    paths = [str(p) for p in split.paths("train")]

    def keras_ds():
        ds = keras.utils.image_dataset_from_directory(
            root / "train",
            image_size=(size, size),
            batch_size=batch,
            shuffle=True,
            seed=0,
            interpolation="bilinear",
            verbose=False,
        )
        return ds.prefetch(AUTOTUNE)

    def woof_ds(cache=False):
        return wh.pipeline.dataset(split, "train", image_size_px=size, batch_size=batch, shuffle=True, cache=cache)

    def decode_ds(ratio: int):
        # Decoded images differ in size, so batch their shapes: the decode still runs for
        # every file, and Python sees 1 element per batch, as for (a) and (b).
        ds = tf.data.Dataset.from_tensor_slices(paths)
        ds = ds.map(
            lambda p: tf.shape(tf.io.decode_jpeg(tf.io.read_file(p), channels=3, ratio=ratio)),
            num_parallel_calls=AUTOTUNE,
        )
        return ds.batch(batch).prefetch(AUTOTUNE)

    # Warm-up: read every file once (page cache) and trace each function once.
    for ds in (keras_ds(), woof_ds(), decode_ds(1), decode_ds(2)):
        _epoch_images_per_s(ds)

    keys = ("a", "b", "b_cold", "b_warm", "b_built", "c", "c2")
    speeds: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}

    def record(key, ds):
        wall, ms = _epoch_images_per_s(ds)
        speeds[key].append(wall)
        cpu[key].append(ms)

    for r in range(rounds):
        record("a", keras_ds())
        record("b", woof_ds())
        cache_dir = scratch / f"cache-{r}"
        cached = woof_ds(cache_dir)
        record("b_cold", cached)
        record("b_warm", cached)
        record("b_built", woof_ds(cache_dir))  # a new dataset over the complete cache: reads only
        record("c", decode_ds(1))
        record("c2", decode_ds(2))
        shutil.rmtree(cache_dir, ignore_errors=True)
        print(
            f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {speeds[k][-1]:.0f}/s {cpu[k][-1]:.2f} ms" for k in keys),
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in speeds.items()}

    def ips(k):
        return f"{med[k]:.0f} img/s, {statistics.median(cpu[k]):.2f} CPU-ms/img"

    def row(what, num, den, target=""):
        ratio = _median_ratio(speeds[num], speeds[den])
        cpu_ratio = _median_ratio(cpu[den], cpu[num])  # less CPU per image = faster
        met = None if not target else ratio >= float(target.split()[-1])
        results.add(Row("1 pipeline", f"{what}, {label}", ips(num), ips(den), ratio, cpu_ratio, target, met))

    row("(b) woofhelpers / (a) keras, first epoch (no cache)", "b", "a", "≥ 2")
    row("(b) woofhelpers / (a) keras, first epoch writing the file cache", "b_cold", "a")
    row("(b) woofhelpers / (a) keras, later epoch of the same dataset (file cache)", "b_warm", "a", "≥ 5")
    row("(b) woofhelpers / (a) keras, dataset built on a complete file cache", "b_built", "a", "≥ 5")
    row("(b) woofhelpers / (c) decode_jpeg alone, full size", "b", "c", "≥ 0.7")
    row("(b) woofhelpers / (c') decode_jpeg alone, ratio=2", "b", "c2")
    row("(c') decode_jpeg ratio=2 / (c) full size", "c2", "c")

    # How different are the pixels? Same files, same order, same size.
    ordered = wh.pipeline.dataset(split, "train", image_size_px=size, batch_size=batch, shuffle=False)
    plain = keras.utils.image_dataset_from_directory(
        root / "train", image_size=(size, size), batch_size=batch, shuffle=False, verbose=False
    )
    mine, theirs = next(iter(ordered))[0].numpy(), next(iter(plain))[0].numpy()
    diff = float(np.abs(mine - theirs).mean())
    results.notes.append(
        f"Pixels ({label}): mean |woofhelpers - keras| over one batch = {diff:.2f} (of 255): the half-size JPEG"
        " decode averages pixels where Keras's bilinear resize samples them."
    )
    print("  " + results.notes[-1], flush=True)


# --- 2. head-only training --------------------------------------------------------------------


def _fit_epoch_s(model, ds) -> tuple[float, float]:
    """Seconds of wall clock and of this process's CPU time for one epoch of ``fit``."""
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start, time.process_time() - cpu


def bench_head(results: Results, split, rounds: int, size: int, batch: int, images: int, scratch: Path) -> None:
    """The course's own engine: ``wh.model.build`` for the trial's model, ``wh.model.head_model``
    for the head alone, ``wh.model.compile_model`` for both, and the feature extraction that
    ``wh.trials.run_trial`` does (``wh.features.feature_datasets``)."""
    import keras

    subset = wh.splits.Split(
        name="head",
        root=split.root,
        parts={
            "train": split.parts["train"][:images],
            "validation": split.parts["train"][images : images + batch],
            "test": (),
        },
    )
    # Both variants read the images from a warm file cache: the same (small) input cost.
    image_ds = wh.pipeline.dataset(subset, "train", image_size_px=size, batch_size=batch, cache=scratch / "head-cache")
    _epoch_images_per_s(image_ds)

    heads = {"original": "flatten head (trials 1-5)", "corrected": "pooled head (corrected trial)"}
    for head, label in heads.items():
        trial = wh.recipes.variant(
            wh.recipes.get("corrected" if head == "corrected" else "trial2"),
            f"bench-{head}",
            image_size_px=size,
            batch_size=batch,
            head_epochs=1,
        )
        keras.utils.set_random_seed(0)
        full = wh.model.build(trial, None)
        head_only = wh.model.head_model(full)
        # Two twins of the same weights would train each other's head: give the
        # recomputing model its own head, so each variant starts where it left off.
        recomputing = wh.model.build(trial, None)
        # As the engine compiles them: the head alone with XLA, the whole model with it only on a GPU.
        gpu = wh.hardware.on_gpu()
        wh.model.compile_model(recomputing, trial.head_optimizer, trial.head_learning_rate, jit_compile=gpu)
        wh.model.compile_model(head_only, trial.head_optimizer, trial.head_learning_rate, jit_compile=True)
        start = time.perf_counter()
        train_by_epoch, _ = wh.features.feature_datasets(wh.features.probe(full), trial, subset)
        extract_s = time.perf_counter() - start
        feature_ds = train_by_epoch(0).prefetch(AUTOTUNE)
        _fit_epoch_s(recomputing, image_ds)  # trace and warm up, untimed
        _fit_epoch_s(head_only, feature_ds)
        recompute, cached, recompute_cpu, cached_cpu = [], [], [], []
        for r in range(rounds):
            wall, cpu = _fit_epoch_s(recomputing, image_ds)
            recompute.append(wall)
            recompute_cpu.append(cpu)
            wall, cpu = _fit_epoch_s(head_only, feature_ds)
            cached.append(wall)
            cached_cpu.append(cpu)
            print(
                f"  {head} round {r + 1}/{rounds}: recompute {recompute[-1]:.2f} s, cached {cached[-1]:.3f} s",
                flush=True,
            )
        ratio = _median_ratio(recompute, cached)
        results.add(
            Row(
                "2 head",
                f"epoch through the frozen base / epoch on cached features, {label}",
                f"{statistics.median(recompute):.2f} s",
                f"{statistics.median(cached):.3f} s",
                ratio,
                cpu_ratio=_median_ratio(recompute_cpu, cached_cpu),
                target="≥ 20",
                met=ratio >= 20,
            )
        )
        results.notes.append(
            f"Head ({label}): {images} images at {size} px, batch {batch}, ResNet50 weights=None (the cost is"
            f" the same with ImageNet weights), epochs after a warm-up epoch; extracting the features once"
            f" (train and validation, with its trace) took {extract_s:.1f} s."
        )


# --- 3. memory --------------------------------------------------------------------------------


def _rss_mib() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(images: int, size: int, batch: int, scratch: Path) -> None:
    """Run in a subprocess: one smoke training epoch; print, as JSON, the peak resident memory
    of the whole run (``getrusage``) and the highest resident memory sampled after each batch
    of the epoch. The whole-run peak can be set while TensorFlow builds the graph, before
    any image is read; the per-batch samples show what the data add while the epoch runs."""
    import keras

    split = bench_data(scratch, images, wh.profiles.load("smoke").synthetic_shortest_side_px)
    ds = wh.pipeline.dataset(split, "train", image_size_px=size, batch_size=batch)
    keras.utils.set_random_seed(0)
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(keras.applications.resnet50.preprocess_input(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    samples: list[float] = []

    class Sample(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            samples.append(_rss_mib())

    model.fit(ds, epochs=1, verbose=0, shuffle=False, callbacks=[Sample()])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    # Skip the first batch: its sample includes the trace of the training step.
    during = samples[1:] or samples
    print(
        json.dumps(
            {
                "images": len(split.parts["train"]),
                "peak_rss_mib": peak_mib,
                "epoch_max_rss_mib": max(during),
                "epoch_rss_growth_mib": during[-1] - during[0],
            }
        )
    )


def bench_memory(results: Results, small: int, large: int, size: int, batch: int, rounds: int, scratch: Path) -> None:
    # Generate both datasets first, so the children only train.
    shortest = wh.profiles.load("smoke").synthetic_shortest_side_px
    bench_data(scratch, small, shortest)
    bench_data(scratch, large, shortest)
    peaks: dict[int, list[float]] = {small: [], large: []}
    epoch_max: dict[int, list[float]] = {small: [], large: []}
    growth: dict[int, list[float]] = {small: [], large: []}
    for r in range(rounds):
        for n in (small, large):
            cmd = [
                sys.executable,
                __file__,
                "--memory-child",
                str(n),
                "--size",
                str(size),
                "--batch",
                str(batch),
                "--scratch",
                str(scratch),
            ]
            start = time.perf_counter()
            out = subprocess.run(
                cmd, capture_output=True, text=True, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
            )
            found = json.loads(out.stdout.strip().splitlines()[-1])
            peaks[n].append(found["peak_rss_mib"])
            epoch_max[n].append(found["epoch_max_rss_mib"])
            growth[n].append(found["epoch_rss_growth_mib"])
            print(
                f"  round {r + 1}/{rounds}: {found['images']} images -> peak RSS"
                f" {found['peak_rss_mib']:.0f} MiB, highest during the epoch {found['epoch_max_rss_mib']:.0f} MiB,"
                f" growth over the epoch {found['epoch_rss_growth_mib']:+.0f} MiB"
                f" ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    for what, values in (("peak RSS of the whole run", peaks), ("highest RSS during the epoch", epoch_max)):
        ratio = _median_ratio(values[large], values[small])
        results.add(
            Row(
                "3 memory",
                f"{what}, smoke training on {large} / {small} images",
                f"{statistics.median(values[large]):.0f} MiB",
                f"{statistics.median(values[small]):.0f} MiB",
                ratio,
                target="≤ 1.2",
                met=ratio <= 1.2,
            )
        )
    results.notes.append(
        f"Memory: resident memory grew by {statistics.median(growth[large]):+.0f} MiB over the {large}-image"
        f" epoch and {statistics.median(growth[small]):+.0f} MiB over the {small}-image one (first batch to"
        " last); ResNet50 at 32 px, batch 16, weights=None, through wh.pipeline.dataset without a cache."
    )


# --- 4. suite time ----------------------------------------------------------------------------


def bench_suite(results: Results, scratch: Path, total: bool) -> None:
    from tools import refresh

    copy = scratch / "chapters"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(refresh.CHAPTERS, copy)
    # As on a fresh clone: data generated and every trial trained, in scratch folders, so
    # nothing in the working tree changes and nothing saved earlier is reused.
    fresh = {"WOOF_DATA_DIR": str(scratch / "suite-data"), "WOOF_RESULTS_DIR": str(scratch / "suite-results")}
    times = {}
    with mock.patch.dict(os.environ, fresh):
        for source in refresh.book_order():
            times[source.stem] = refresh.refresh(copy / source.name, "smoke")  # writes into the copy only
            print(f"  chapter {source.stem}: {times[source.stem]:.1f} s", flush=True)
    chapters_total = sum(times.values())
    slowest = max(times, key=times.get)
    results.add(
        Row(
            "4 suite",
            "slowest chapter / all chapters (smoke execution)",
            f"{slowest} {times[slowest]:.1f} s",
            f"{chapters_total:.1f} s",
            times[slowest] / chapters_total,
        )
    )
    results.notes.append(
        "Chapters (smoke profile, executed from a copy): " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
    )
    if not total:
        results.notes.append("Suite total: not measured in this run (pass --suite-total).")
        return
    start = time.perf_counter()
    suite_env = dict(
        os.environ, WOOF_DATA_DIR=str(scratch / "pytest-data"), WOOF_RESULTS_DIR=str(scratch / "pytest-results")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--durations=8"], cwd=REPO, capture_output=True, text=True, env=suite_env
    )
    seconds = time.perf_counter() - start
    tail = proc.stdout.strip().splitlines()
    durations = [line for line in tail if line[:1].isdigit() and "s " in line][:8]
    results.add(
        Row(
            "4 suite",
            "`python -m pytest` (what `make test` runs after ruff) / the 6-minute target",
            f"{seconds:.0f} s",
            "360 s",
            seconds / 360,
            target="≤ 1",
            met=seconds <= 360,
        )
    )
    results.notes.append(
        f"Suite: pytest exit {proc.returncode}; {tail[-1] if tail else ''}; slowest: " + "; ".join(durations)
    )


# --- 5. GPU -----------------------------------------------------------------------------------


def bench_gpu(results: Results, rounds: int) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        msg = "GPU: skipped, no GPU found (ResNet50 float32 vs mixed precision + XLA needs one)."
        results.notes.append(msg)
        print("  " + msg)
        return
    size, batch, steps = 224, 128, 20
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = np.arange(batch) % 10
    ds = tf.data.Dataset.from_tensors((x, y)).repeat(steps).prefetch(AUTOTUNE)

    def build(mixed: bool):
        keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
        model = keras.applications.ResNet50(weights=None, classes=10, input_shape=(size, size, 3))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=mixed)
        model.fit(ds.take(2), verbose=0)
        return model

    models = {"fp32": build(False), "mixed": build(True)}
    keras.mixed_precision.set_global_policy("float32")
    speeds = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            start = time.perf_counter()
            m.fit(ds, verbose=0)
            speeds[k].append(batch * steps / (time.perf_counter() - start))
    ratio = _median_ratio(speeds["mixed"], speeds["fp32"])
    results.add(
        Row(
            "5 gpu",
            "ResNet50 train step, mixed precision + XLA / float32",
            f"{statistics.median(speeds['mixed']):.0f} img/s",
            f"{statistics.median(speeds['fp32']):.0f} img/s",
            ratio,
            target="≥ 2",
            met=ratio >= 2,
        )
    )


# --- 6. decode-time crops ---------------------------------------------------------------------


def bench_crop(results: Results, split, rounds: int, size: int, batch: int, label: str = "synthetic JPEGs") -> None:
    """What cutting the square at decode time saves. (d) ``decode_jpeg`` of the whole file,
    then a slice to the centred square; (e) ``decode_and_crop_jpeg`` of that square only:
    libjpeg never decodes the rows below the window and skips the inverse DCT and colour
    conversion of the columns beside it. Both at full scale and at the half scale the
    pipeline uses for 320 px files and a 160 px target. Then the whole pipeline (no cache)
    with each ``crop``."""
    import tensorflow as tf

    paths = [str(p) for p in split.paths("train")]

    def decode_ds(fused: bool, ratio: int):
        def one(path):
            contents = tf.io.read_file(path)
            shape = tf.image.extract_jpeg_shape(contents)
            side = tf.minimum(shape[0], shape[1])
            window = tf.stack([(shape[0] - side) // 2, (shape[1] - side) // 2, side, side]) // ratio
            if fused:
                image = tf.image.decode_and_crop_jpeg(contents, window, channels=3, ratio=ratio)
            else:
                image = tf.io.decode_jpeg(contents, channels=3, ratio=ratio)
                image = image[window[0] : window[0] + window[2], window[1] : window[1] + window[3]]
            return tf.shape(image)  # square crops of varying sides: batch their shapes (as section 1)

        ds = tf.data.Dataset.from_tensor_slices(paths).map(one, num_parallel_calls=AUTOTUNE)
        return ds.batch(batch).prefetch(AUTOTUNE)

    def woof_ds(crop: str):
        return wh.pipeline.dataset(split, "train", image_size_px=size, batch_size=batch, shuffle=True, crop=crop)

    variants = {
        "d1": lambda: decode_ds(False, 1),
        "e1": lambda: decode_ds(True, 1),
        "d2": lambda: decode_ds(False, 2),
        "e2": lambda: decode_ds(True, 2),
        "squash": lambda: woof_ds("squash"),
        "centre": lambda: woof_ds("centre"),
        "random": lambda: woof_ds("random"),
    }
    for make in variants.values():  # warm-up: page cache and traces
        _epoch_images_per_s(make())
    speeds: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for key, make in variants.items():
            wall, ms = _epoch_images_per_s(make())
            speeds[key].append(wall)
            cpu[key].append(ms)
        print(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{k} {speeds[k][-1]:.0f}/s {cpu[k][-1]:.2f} ms" for k in variants),
            flush=True,
        )

    def ips(k):
        return f"{statistics.median(speeds[k]):.0f} img/s, {statistics.median(cpu[k]):.2f} CPU-ms/img"

    def row(what, num, den):
        ratio = _median_ratio(speeds[num], speeds[den])
        cpu_ratio = _median_ratio(cpu[den], cpu[num])  # less CPU per image = faster
        results.add(Row("6 crop", f"{what}, {label}", ips(num), ips(den), ratio, cpu_ratio))

    row("(e) decode_and_crop_jpeg / (d) decode_jpeg then slice, centre square, full scale", "e1", "d1")
    row("(e) decode_and_crop_jpeg / (d) decode_jpeg then slice, centre square, ratio=2", "e2", "d2")
    row(f"wh.pipeline.dataset crop='centre' / crop='squash', {size} px, no cache", "centre", "squash")
    row(f"wh.pipeline.dataset crop='random' / crop='squash', {size} px, no cache", "random", "squash")


# --- main -------------------------------------------------------------------------------------

SECTIONS = ("pipeline", "head", "memory", "suite", "gpu", "crop")


def main(argv: list[str] | None = None) -> Results:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the script works, measures nothing")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--rounds", type=int, help="alternating rounds per comparison")
    parser.add_argument("--suite-total", action="store_true", help="also time the whole test suite (minutes)")
    parser.add_argument("--scratch", type=Path, help="folder for generated data (default: data/benchmarks)")
    parser.add_argument("--json", type=Path, help="also write the rows and notes as JSON here")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    scratch = args.scratch or REPO / "data" / "benchmarks"
    scratch.mkdir(parents=True, exist_ok=True)
    if args.memory_child:
        memory_child(args.memory_child, args.size, args.batch, scratch)
        return Results()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--only {unknown}: choose from {SECTIONS}")
    q = args.quick
    rounds = args.rounds or (1 if q else 5)
    results = Results()
    about = machine()
    print(about, flush=True)
    work = Path(tempfile.mkdtemp(dir=scratch, prefix=".run-"))
    try:
        if "pipeline" in sections:
            print("1. input pipeline", flush=True)
            split = bench_data(scratch, 40 if q else 500, 96 if q else 320)
            bench_pipeline(results, split, rounds, 48 if q else 160, 8 if q else 32, work)
            if q:
                pass  # the real photos are for measuring, not for proving the script runs
            elif REAL_SAMPLE.is_dir():
                real = real_sample_split(REAL_SAMPLE, 23, work / "real-sample")
                print(f"1b. input pipeline on {len(real.parts['train'])} links to the real photos of {REAL_SAMPLE}")
                bench_pipeline(results, real, rounds, 160, 32, work, label="real photos")
            else:
                results.notes.append(f"Real photos: {REAL_SAMPLE} not found, so only synthetic JPEGs were measured.")
        if "head" in sections:
            print("2. head-only training", flush=True)
            split = bench_data(scratch, 40 if q else 500, 96 if q else 320)
            bench_head(results, split, rounds if q else 3, 32 if q else 160, 8 if q else 32, 16 if q else 128, work)
        if "memory" in sections:
            print("3. memory", flush=True)
            bench_memory(results, 20 if q else 200, 60 if q else 2000, 32, 8 if q else 16, 1, scratch)
        if "suite" in sections:
            print("4. suite time", flush=True)
            if q:
                results.notes.append("Suite: skipped in --quick runs (it executes every chapter).")
            else:
                bench_suite(results, work, args.suite_total)
        if "gpu" in sections:
            print("5. GPU", flush=True)
            bench_gpu(results, rounds)
        if "crop" in sections:
            print("6. decode-time crops", flush=True)
            split = bench_data(scratch, 40 if q else 500, 96 if q else 320)
            bench_crop(results, split, rounds, 48 if q else 160, 8 if q else 32)
            if not q and REAL_SAMPLE.is_dir():
                real = real_sample_split(REAL_SAMPLE, 23, work / "real-sample-crop")
                print(f"6b. decode-time crops on {len(real.parts['train'])} links to the real photos of {REAL_SAMPLE}")
                bench_crop(results, real, rounds, 160, 32, label="real photos")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"Machine: {about}")
    print(results.table())
    for note in results.notes:
        print(f"- {note}")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": about, "rows": [r.__dict__ for r in results.rows], "notes": results.notes}, indent=1)
        )
    return results


if __name__ == "__main__":
    main()
