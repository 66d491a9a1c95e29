"""Check that no output nbval compares depends on the CPU's BLAS kernel or the thread count.

``make test`` runs everything with this machine's defaults: the OpenBLAS kernel that NumPy's
OpenBLAS picks for this CPU, and as many threads as there are cores (NumPy/OpenBLAS, OpenMP,
TensorFlow). A learner's or a CI machine may differ in both, and a committed output that
depends on them fails there (issue 13: a table of training errors trained in NumPy). This
runs the BLAS-sensitive part of the suite again, under settings that differ from the defaults:

- ``kernel``: OpenBLAS forced to another kernel that this CPU supports
  (``OPENBLAS_CORETYPE``, chosen from ``/proc/cpuinfo``'s flags: never one the CPU lacks,
  because OpenBLAS would then crash or compute garbage), and on a CPU with AVX-512 oneDNN,
  TensorFlow's kernel library, capped at AVX2 (``ONEDNN_MAX_CPU_ISA``);
- ``threads``: one thread everywhere (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, and
  TensorFlow's intra- and inter-op pools through ``TF_NUM_INTRAOP_THREADS`` and
  ``TF_NUM_INTEROP_THREADS``, which TensorFlow's runtime reads when the Python API has not set
  them; woofhelpers never does);
- ``both``: the two at once, one run (what CI runs: a compared output that depends on either
  differs; a failure here is narrowed down by running the two alone).

Each run starts from empty trial results (``WOOF_RESULTS_DIR`` in a temporary folder), so
every trial trains again under its setting instead of loading what the default run saved; the
generated smoke data (``data/``) are reused: they come from NumPy's random generator and
Pillow, not from BLAS. What runs: every chapter under strict nbval, and ``tests/test_resnet.py``
(the NumPy networks, and the degradation chapter's claim).

    python .ci/portability.py [kernel] [threads] [both] [-- pytest arguments]   (default: both)

Arguments after ``--`` go to pytest (``-- -n0`` runs in one process, ``-- -k resnet`` a part).

It prints what it set and why, and what OpenBLAS reports under it; exit status 1 if a run
failed or a setting did not take effect.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Not the capstone chapter: none of its compared outputs holds a computed number (its
# predictions, measures and export table are nbval-ignore-output, their claims asserted in
# code), and its four exports would add minutes to every run.
WHAT = ["chapters", "--ignore=chapters/capstone.ipynb", "tests/test_resnet.py"]

# OpenBLAS kernels to force, in order of preference, with the CPU flags each needs.
KERNELS = {
    "Haswell": {"avx2", "fma"},
    "SkylakeX": {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"},
    "Sandybridge": {"avx"},
}
ONE_THREAD = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}
PROBE = (
    "import json, numpy, threadpoolctl\n"
    "print(json.dumps([{k: i.get(k) for k in ('prefix', 'architecture', 'num_threads')}\n"
    "    for i in threadpoolctl.threadpool_info() if i.get('internal_api') == 'openblas']))"
)


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def openblas(env: dict[str, str]) -> list[dict]:
    """What every OpenBLAS loaded with NumPy reports under ``env``: kernel and threads."""
    import json

    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def other_kernel(default: str, flags: set[str]) -> tuple[str | None, str]:
    """A kernel this CPU supports other than ``default``, and why it (or none) was chosen."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None, f"not an x86-64 CPU ({platform.machine()}): no kernel forced"
    for name, needs in KERNELS.items():
        if name.lower() != default.lower() and needs <= flags:
            return name, f"default kernel {default}; this CPU has {', '.join(sorted(needs))}, which {name} needs"
    return None, f"default kernel {default}; no other kernel in {list(KERNELS)} is supported by this CPU"


def settings(names: list[str]) -> list[tuple[str, dict[str, str], list[str]]]:
    """(name, variables to set, what was decided) for each setting asked for."""
    flags = cpu_flags()
    kernel_vars, notes = {}, []
    default = openblas(dict(os.environ))
    kernel, why = other_kernel(default[0]["architecture"] if default else "unknown", flags)
    notes.append(f"OpenBLAS: {why}")
    if os.environ.get("OPENBLAS_CORETYPE"):
        notes.append(f"(this environment already sets OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']})")
    if kernel:
        kernel_vars["OPENBLAS_CORETYPE"] = kernel
    if "avx512f" in flags:
        kernel_vars["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        notes.append("oneDNN (TensorFlow): this CPU has AVX-512; capped at AVX2, as on a CPU without it")
    chosen = {
        "kernel": (kernel_vars, notes),
        "threads": (dict(ONE_THREAD), ["one thread for OpenBLAS, OpenMP and TensorFlow (intra- and inter-op)"]),
        "both": ({**kernel_vars, **ONE_THREAD}, [*notes, "and one thread everywhere"]),
    }
    return [(name, *chosen[name]) for name in names]


def run(name: str, variables: dict[str, str], notes: list[str], pytest_args: list[str] | None = None) -> bool:
    """Run the BLAS-sensitive tests under ``variables`` (and ``pytest_args``); True if they passed."""
    print(f"\n=== portability: {name} ===", *(f"  {n}" for n in notes), sep="\n")
    print("  sets: " + (" ".join(f"{k}={v}" for k, v in variables.items()) or "nothing (see above)"))
    if not variables:
        print("  SKIPPED: nothing to change on this machine")
        return True
    with tempfile.TemporaryDirectory(prefix=f"woof-portability-{name}-") as tmp:
        env = dict(os.environ, **variables, WOOF_RESULTS_DIR=str(Path(tmp) / "results"))
        reported = openblas(env)
        print(f"  OpenBLAS under it: {reported}")
        wanted_kernel, wanted_threads = variables.get("OPENBLAS_CORETYPE"), variables.get("OPENBLAS_NUM_THREADS")
        for lib in reported:
            if wanted_kernel and (lib["architecture"] or "").lower() != wanted_kernel.lower():
                print(f"  FAILED: {lib['prefix']} runs kernel {lib['architecture']}, not {wanted_kernel}")
                return False
            if wanted_threads and lib["num_threads"] != int(wanted_threads):
                print(f"  FAILED: {lib['prefix']} runs {lib['num_threads']} threads, not {wanted_threads}")
                return False
        start = time.perf_counter()
        command = [sys.executable, "-m", "pytest", *WHAT, *(pytest_args or [])]
        status = subprocess.run(command, cwd=ROOT, env=env).returncode
        outcome = "passed" if status == 0 else "FAILED"
        print(f"=== portability: {name}: {outcome} in {time.perf_counter() - start:.0f} s")
        return status == 0


def main(argv: list[str]) -> int:
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    names = (argv[: argv.index("--")] if "--" in argv else argv) or ["both"]
    unknown = [n for n in names if n not in ("kernel", "threads", "both")]
    if unknown:
        print(f"unknown setting(s) {unknown}: choose from kernel, threads, both", file=sys.stderr)
        return 2
    results = {name: run(name, variables, notes, pytest_args) for name, variables, notes in settings(names)}
    print("\nportability:", ", ".join(f"{n} {'passed' if ok else 'FAILED'}" for n, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
