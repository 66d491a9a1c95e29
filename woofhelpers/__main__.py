"""Command line: ``python -m woofhelpers run-trial <name> [--profile smoke|full] [--retrain]
[--results FOLDER] [--debug]``.

Runs a registered trial headless, with Keras' progress output, and writes the same result
files as ``wh.trials.run_trial`` in a chapter (``results/<profile>/<trial>/``, or under
``--results``). Run it again after an interruption and it resumes from the last finished
epoch; ``--retrain`` trains it again from the start.

When something is wrong it says so in one line on stderr, with what to do, and no Python
traceback (``--debug`` shows one): exit status 2 for a setting or argument that cannot work
(checked before anything runs), 1 for a run that failed (a download, a full disk, a damaged
saved file), 130 when interrupted.

Taught in the chapter *Trial 1*.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

USAGE_ERROR, RUN_FAILED, INTERRUPTED = 2, 1, 130
# The errors the helpers raise on purpose, each with a message that says what to do.
EXPECTED = (ValueError, OSError, RuntimeError)


def _folder(text: str) -> str:
    """``--results``: a folder, or a path where one can be made."""
    if Path(text).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"{text} is a file; name a folder for the results")
    return text


def _report(error: BaseException) -> None:
    """Print ``error`` as one line on stderr."""
    message = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, EXPECTED):
        message = f"unexpected {type(error).__name__}: {message} (run again with --debug for the traceback)"
    print(f"error: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), run the trial it names, print its test
    accuracy and where its result files are; return the exit status (0 on success, see the
    module's docstring for the others)."""
    from woofhelpers import profiles, trials

    parser = argparse.ArgumentParser(prog="python -m woofhelpers", description="Woof course helpers.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run-trial", help="train and test one trial, save its result files")
    run.add_argument("name", help=f"one of {', '.join(trials.TRIAL_NAMES)}")
    run.add_argument(
        "--profile",
        choices=profiles.PROFILE_NAMES,
        default=None,
        help="smoke (default, offline) or full (real data, ImageNet weights)",
    )
    run.add_argument("--retrain", action="store_true", help="train again even if a result is saved")
    run.add_argument("--results", type=_folder, default=None, help="results folder (default: results/ of the checkout)")
    run.add_argument("--debug", action="store_true", help="on an error, show Python's traceback")
    args = parser.parse_args(argv)
    try:
        trial = trials.get(args.name)
    except ValueError as error:
        run.error(str(error))
    try:
        profile = profiles.use(args.profile)
    except ValueError as error:
        if args.debug:
            raise
        _report(error)
        return USAGE_ERROR
    print(profile.describe())
    try:
        result = trials.run_trial(trial, profile, retrain=args.retrain, verbose=1, results=args.results)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted: run the same command again to resume from the last finished epoch", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:
        if args.debug:
            raise
        _report(error)
        return RUN_FAILED
    for which, metrics in result.test.items():
        print(f"test ({which}): accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}, {metrics['n']} images")
    print(f"saved in {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
