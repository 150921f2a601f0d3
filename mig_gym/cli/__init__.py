"""The ``mig-gym`` command line: run, validate, plan, compare, sweep, train, baselines.

One module per sub-command (or group); each adds its parser with ``add_parser`` and runs with
``cmd_<name>``. User errors (a malformed scenario or data file, a missing file, an unknown policy,
a bad option value) print one clear message and exit with status 2 (``--verbose`` adds the
traceback); anything else is a bug and exits with status 1 and a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from mig_gym.cli import baselines, experiments, plan, run, train, validate
from mig_gym.cli.args import USER_ERRORS

__all__ = ["main", "parser"]

SUBCOMMANDS = (run, validate, plan, experiments, train, baselines)


def parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    p = argparse.ArgumentParser(prog="mig-gym", description=__doc__.split("\n")[0])
    p.add_argument("--verbose", action="store_true", help="show tracebacks for user errors too")
    sub = p.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    for sp in sub.choices.values():  # --verbose also after the subcommand
        sp.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for user errors too",
        )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 success, 2 user error (one message; ``--verbose`` adds the traceback),
    1 a bug (traceback), 130 interrupted."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a bad argument (2, message printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (keep interpreter exit quiet)
        return 0
    except USER_ERRORS as e:
        if args.verbose:
            traceback.print_exc()
        msg = str(e) if not isinstance(e, KeyError) else str(e.args[0])
        print(f"mig-gym {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            f"mig-gym {args.command}: internal error (a bug in mig_gym; please report it with "
            "the traceback above)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
