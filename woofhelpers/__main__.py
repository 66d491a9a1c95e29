"""Command line, three subcommands:

- ``python -m woofhelpers run-trial <name> [--profile smoke|full] [--retrain] [--results FOLDER]
  [--debug]`` runs a registered trial headless, with Keras' progress output, and writes the
  same result files as ``wh.trials.run_trial`` in a chapter (``results/<profile>/<trial>/``,
  or under ``--results``), and draws its learning curves into ``learning_curves.png``. Run it
  again after an interruption and it resumes from the last finished epoch; ``--retrain``
  trains it again from the start.
- ``python -m woofhelpers publish [--profile full] [--results FOLDER] [--out FOLDER]
  [--only NAME[,NAME]] [--allow-not-real] [--debug]`` runs or loads every registered trial
  (or those ``--only`` names) and writes their small bundle, which the book shows
  (``wh.published``), into ``results/published/`` (or ``--out``); it prints the folder and
  its size. A profile without real data and ImageNet weights is refused unless
  ``--allow-not-real`` (rehearsals and tests; the bundle then says it is NOT real results).
- ``python -m woofhelpers classify PHOTO --model FILE.keras [--imagenet] [--top N] [--profile
  smoke|full] [--debug]`` classifies one photo (a file or an ``http(s)://`` URL) with a saved
  model (``wh.export.save_keras``) and prints the report of ``wh.predict.photo``; with
  ``--imagenet`` it also asks the profile's ImageNet classifier whether the photo is a dog of
  the ten (meaningful only with ImageNet's weights: the full profile).

When something is wrong it says so in one line on stderr, with what to do, and no Python
traceback (``--debug`` shows one): exit status 2 for a setting or argument that cannot work
(checked before anything runs), 1 for a run that failed (a download, a full disk, a damaged
saved file), 130 when interrupted.

Taught in the chapters *Trial 1* (``run-trial``), *Results* (``publish``) and *Is my dog one of the
ten?* (``classify``).
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


def _attempt(args: argparse.Namespace, action, *, failure: int, expected=Exception, interrupted: str = "interrupted"):
    """Run ``action()``; on an error, print it as one line and return ``(None, failure)``
    (``interrupted`` and exit status 130 on Ctrl-C), or raise it with ``--debug``. On
    success return ``(its value, None)``. Only ``expected`` errors are caught."""
    try:
        return action(), None
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(interrupted, file=sys.stderr)
        return None, INTERRUPTED
    except expected as error:
        if args.debug:
            raise
        _report(error)
        return None, failure


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run its subcommand: ``run-trial``
    prints the trial's test accuracy and where its result files are, ``publish`` the
    bundle's folder and size. Returns the exit status (0 on success, see the module's
    docstring for the others)."""
    from woofhelpers import plots, profiles, recipes, trials

    parser = argparse.ArgumentParser(prog="python -m woofhelpers", description="Woof course helpers.")
    commands = parser.add_subparsers(dest="command", required=True)
    profile_help = "smoke (default, offline) or full (real data, ImageNet weights)"
    results_help = "results folder (default: results/ of the checkout)"
    debug_help = "on an error, show Python's traceback"
    run = commands.add_parser("run-trial", help="train and test one trial, save its result files")
    run.add_argument("name", help=f"one of {', '.join(recipes.TRIAL_NAMES)}")
    run.add_argument("--profile", choices=profiles.PROFILE_NAMES, default=None, help=profile_help)
    run.add_argument("--retrain", action="store_true", help="train again even if a result is saved")
    run.add_argument("--results", type=_folder, default=None, help=results_help)
    run.add_argument("--debug", action="store_true", help=debug_help)
    publish = commands.add_parser(
        "publish", help="run or load every trial, write their small bundle for the book (results/published/)"
    )
    publish.add_argument("--profile", choices=profiles.PROFILE_NAMES, default=None, help=profile_help)
    publish.add_argument("--results", type=_folder, default=None, help=results_help)
    publish.add_argument("--out", type=_folder, default=None, help="bundle folder (default: results/published/)")
    publish.add_argument(
        "--only",
        default=None,
        metavar="NAME[,NAME]",
        help="only these trials (default: every registered one, the trials and the ladder's rungs)",
    )
    publish.add_argument(
        "--allow-not-real",
        action="store_true",
        help="publish from a profile without real data and ImageNet weights: for rehearsals and tests",
    )
    publish.add_argument("--debug", action="store_true", help=debug_help)
    classify = commands.add_parser("classify", help="classify one photo with a saved model (.keras)")
    classify.add_argument("photo", help="a photo file, or an http(s):// URL")
    classify.add_argument("--model", required=True, help="a .keras file saved with wh.export.save_keras")
    classify.add_argument(
        "--imagenet", action="store_true", help="also ask ImageNet's classifier whether it is a dog of the ten"
    )
    classify.add_argument("--top", type=int, default=3, help="how many breeds to list (default 3)")
    classify.add_argument("--profile", choices=profiles.PROFILE_NAMES, default=None, help=profile_help)
    classify.add_argument("--debug", action="store_true", help=debug_help)
    args = parser.parse_args(argv)
    if args.command == "publish":
        return _publish(args)
    if args.command == "classify":
        return _classify(args)
    try:
        trial = recipes.get(args.name)
    except ValueError as error:
        run.error(str(error))
    profile, status = _attempt(args, lambda: profiles.load(args.profile), failure=USAGE_ERROR, expected=ValueError)
    if status is not None:
        return status
    print(profile.describe())
    result, status = _attempt(
        args,
        lambda: trials.run_trial(trial, profile, retrain=args.retrain, verbose=1, results=args.results),
        failure=RUN_FAILED,
        interrupted="interrupted: run the same command again to resume from the last finished epoch",
    )
    if status is not None:
        return status
    for which, metrics in result.test.items():
        print(f"test ({which}): accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}, {metrics['n']} images")
    curves, status = _attempt(args, lambda: plots.save_trial_curves(result), failure=RUN_FAILED)
    if status is not None:
        return status
    print(f"saved in {result.path} (learning curves: {curves.name})")
    return 0


def _publish(args: argparse.Namespace) -> int:
    """``publish``: check everything that can be checked first (exit 2), then run or load
    the trials and write the bundle (exit 1 if that fails)."""
    from woofhelpers import profiles, published

    names = None if args.only is None else [name.strip() for name in args.only.split(",") if name.strip()]

    def check():
        profile = profiles.load(args.profile)
        return profile, published.check_request(profile, names, allow_not_real=args.allow_not_real)

    checked, status = _attempt(args, check, failure=USAGE_ERROR, expected=ValueError)
    if status is not None:
        return status
    profile, names = checked
    print(profile.describe())
    out, status = _attempt(
        args,
        lambda: published.publish(
            profile, out=args.out, names=names, results=args.results, allow_not_real=args.allow_not_real, verbose=1
        ),
        failure=RUN_FAILED,
        interrupted="interrupted: the previous bundle, if any, is unchanged; run the same command again (finished"
        " trials are loaded, an unfinished one resumes from its last finished epoch)",
    )
    if status is not None:
        return status
    print(f"published {len(names)} trial(s) in {out} ({published.size_kib(out):.0f} KiB)")
    return 0


def _classify(args: argparse.Namespace) -> int:
    """``classify``: read the photo and check the model file first (exit 2), then load the
    model and classify (exit 1 if that fails)."""
    from woofhelpers import baseline, export, predict, profiles

    def check():
        profile = profiles.load(args.profile)
        if not 1 <= args.top <= 10:
            raise ValueError(f"--top {args.top}: choose 1 to 10")
        return profile, export.check_model_file(args.model), predict.open_photo(args.photo)

    checked, status = _attempt(args, check, failure=USAGE_ERROR, expected=(ValueError, OSError))
    if status is not None:
        return status
    profile, model_file, picture = checked

    def classify():
        model = export.load_keras(model_file)
        imagenet_model = None
        if args.imagenet:
            print(baseline.describe(profile).replace("Zero-training baseline", "ImageNet's classifier"))
            imagenet_model = baseline.imagenet_classifier(profile)
        print(predict.photo(model, picture, top=args.top, imagenet_model=imagenet_model))

    _, status = _attempt(args, classify, failure=RUN_FAILED)
    return 0 if status is None else status


if __name__ == "__main__":
    sys.exit(main())
