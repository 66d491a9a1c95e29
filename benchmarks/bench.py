"""Benchmarks for the Woof course: every figure is a ratio measured side by side in one run.

    .venv/bin/python benchmarks/bench.py                 # everything but the full test suite
    .venv/bin/python benchmarks/bench.py --suite-total   # ... and time the README's `make test` command
    .venv/bin/python benchmarks/bench.py --quick         # a reduced run that proves the script works

Sections (``--only pipeline,head,memory,suite,gpu``):

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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import woofhelpers as wh  # noqa: E402

AUTOTUNE = -1


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


def bench_pipeline(results: Results, split, rounds: int, size: int, batch: int, scratch: Path) -> None:
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

    keys = ("a", "b", "b_cold", "b_warm", "c", "c2")
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
        results.add(Row("1 pipeline", what, ips(num), ips(den), ratio, cpu_ratio, target, met))

    row("(b) woofhelpers / (a) keras, first epoch (no cache)", "b", "a", "≥ 2")
    row("(b) woofhelpers / (a) keras, first epoch writing the file cache", "b_cold", "a")
    row("(b) woofhelpers / (a) keras, later epoch (file cache)", "b_warm", "a", "≥ 5")
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
        f"Pixels: mean |woofhelpers - keras| over one batch = {diff:.2f} (of 255): the half-size JPEG"
        " decode averages pixels where Keras's bilinear resize samples them."
    )
    print("  " + results.notes[-1], flush=True)


# --- 2. head-only training --------------------------------------------------------------------


def _head(kind: str, input_shape):
    import keras

    inputs = keras.Input(input_shape)
    if kind == "flatten":  # the original exercise's head
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(1000, activation="relu")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"head_{kind}")


def _fit_epoch_s(model, ds) -> tuple[float, float]:
    """Seconds of wall clock and of this process's CPU time for one epoch of ``fit``."""
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start, time.process_time() - cpu


def bench_head(results: Results, split, rounds: int, size: int, batch: int, images: int, scratch: Path) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    subset = wh.splits.Split(
        name="head", root=split.root, parts={"train": split.parts["train"][:images], "validation": (), "test": ()}
    )
    # The images come from a warm file cache, so both variants pay the same (small) input cost.
    image_ds = wh.pipeline.dataset(subset, "train", image_size_px=size, batch_size=batch, cache=scratch / "head-cache")
    _epoch_images_per_s(image_ds)

    keras.utils.set_random_seed(0)
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(size, size, 3))
    base.trainable = False
    preprocess = keras.layers.Lambda(keras.applications.resnet50.preprocess_input, name="preprocess")
    print("  engine: keras directly (woofhelpers' cached-feature path is not committed yet)", flush=True)

    inputs = keras.Input((size, size, 3))
    features_model = keras.Model(inputs, base(preprocess(inputs), training=False))
    # Extract once, pairing each image's features with its label in the same pass.
    start = time.perf_counter()
    xs, ys = [], []
    for x, y in image_ds:
        xs.append(features_model(x, training=False).numpy())
        ys.append(y.numpy())
    extract_s = time.perf_counter() - start
    features, labels = np.concatenate(xs), np.concatenate(ys)
    feature_ds = (
        tf.data.Dataset.from_tensor_slices((features, labels))
        .shuffle(len(labels), seed=0)
        .batch(batch)
        .prefetch(AUTOTUNE)
    )

    for kind in ("flatten", "pooled"):
        head_full = _head(kind, features.shape[1:])
        full = keras.Model(inputs, head_full(base(preprocess(inputs), training=False)))
        full.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
        head_only = _head(kind, features.shape[1:])
        head_only.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
        _fit_epoch_s(full, image_ds.take(1))  # trace once, untimed
        _fit_epoch_s(head_only, feature_ds.take(1))
        recompute, cached, recompute_cpu, cached_cpu = [], [], [], []
        for r in range(rounds):
            wall, cpu = _fit_epoch_s(full, image_ds)
            recompute.append(wall)
            recompute_cpu.append(cpu)
            wall, cpu = _fit_epoch_s(head_only, feature_ds)
            cached.append(wall)
            cached_cpu.append(cpu)
            print(
                f"  {kind} round {r + 1}/{rounds}: recompute {recompute[-1]:.2f} s, cached {cached[-1]:.3f} s",
                flush=True,
            )
        ratio = _median_ratio(recompute, cached)
        results.add(
            Row(
                "2 head",
                f"epoch through the frozen base / epoch on cached features ({kind} head)",
                f"{statistics.median(recompute):.2f} s",
                f"{statistics.median(cached):.3f} s",
                ratio,
                cpu_ratio=_median_ratio(recompute_cpu, cached_cpu),
                target="≥ 20",
                met=ratio >= 20,
            )
        )
    results.notes.append(
        f"Head: {len(labels)} images at {size} px, batch {batch}, ResNet50 weights=None (the cost is the same"
        f" with ImageNet weights); extracting the features once took {extract_s:.1f} s,"
        " about one epoch through the base."
    )


# --- 3. memory --------------------------------------------------------------------------------


def memory_child(images: int, size: int, batch: int, scratch: Path) -> None:
    """Run in a subprocess: one smoke training epoch, then print peak RSS in MiB as JSON."""
    import keras

    split = bench_data(scratch, images, wh.profiles.load("smoke").synthetic_shortest_side_px)
    ds = wh.pipeline.dataset(split, "train", image_size_px=size, batch_size=batch)
    keras.utils.set_random_seed(0)
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(size, size, 3))
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(keras.applications.resnet50.preprocess_input(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"images": len(split.parts["train"]), "peak_rss_mib": peak_mib}))


def bench_memory(results: Results, small: int, large: int, size: int, batch: int, rounds: int, scratch: Path) -> None:
    # Generate both datasets first, so the children only train.
    shortest = wh.profiles.load("smoke").synthetic_shortest_side_px
    bench_data(scratch, small, shortest)
    bench_data(scratch, large, shortest)
    peaks: dict[int, list[float]] = {small: [], large: []}
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
            print(
                f"  round {r + 1}/{rounds}: {found['images']} images -> peak RSS"
                f" {found['peak_rss_mib']:.0f} MiB ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    ratio = _median_ratio(peaks[large], peaks[small])
    results.add(
        Row(
            "3 memory",
            f"peak RSS, smoke training on {large} / {small} images",
            f"{statistics.median(peaks[large]):.0f} MiB",
            f"{statistics.median(peaks[small]):.0f} MiB",
            ratio,
            target="≤ 1.2",
            met=ratio <= 1.2,
        )
    )


# --- 4. suite time ----------------------------------------------------------------------------


def bench_suite(results: Results, scratch: Path, total: bool) -> None:
    from woofhelpers import refresh

    copy = scratch / "chapters"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(refresh.CHAPTERS, copy)
    times = {}
    for md in sorted(copy.glob("*.md")):
        times[md.stem] = refresh.refresh(md, "smoke")  # writes the .ipynb into the copy only
        print(f"  chapter {md.stem}: {times[md.stem]:.1f} s", flush=True)
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
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--durations=8"], cwd=REPO, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    tail = proc.stdout.strip().splitlines()
    durations = [line for line in tail if line[:1].isdigit() and "s " in line][:8]
    results.add(
        Row(
            "4 suite",
            "`make test` total / 6-minute target",
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


# --- main -------------------------------------------------------------------------------------

SECTIONS = ("pipeline", "head", "memory", "suite", "gpu")


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
        if "head" in sections:
            print("2. head-only training", flush=True)
            split = bench_data(scratch, 40 if q else 500, 96 if q else 320)
            bench_head(results, split, rounds if q else 3, 32 if q else 160, 8 if q else 32, 16 if q else 64, work)
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
