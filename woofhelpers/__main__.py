"""Command line: ``python -m woofhelpers run-trial <name> [--profile smoke|full] [--retrain]``.

Runs a registered trial headless, with Keras' progress output, and writes the same result
files as ``wh.trials.run_trial`` in a chapter (``results/<profile>/<trial>/``). Run it
again after an interruption and it resumes from the last finished epoch.

Taught in the chapter *Trial 1*.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), run the trial it names, print its test
    accuracy and where its result files are; return the exit status (0)."""
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
    run.add_argument("--results", default=None, help="results folder (default: results/ of the checkout)")
    args = parser.parse_args(argv)
    try:
        trial = trials.get(args.name)
    except ValueError as error:
        parser.error(str(error))
    profile = profiles.use(args.profile)
    print(profile.describe())
    result = trials.run_trial(trial, profile, retrain=args.retrain, verbose=1, results=args.results)
    for which, metrics in result.test.items():
        print(f"test ({which}): accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}, {metrics['n']} images")
    print(f"saved in {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
