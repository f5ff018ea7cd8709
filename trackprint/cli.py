"""The ``trackprint`` command line: one subcommand per module in ``trackprint/commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and
sets ``func`` to a callable taking the parsed arguments and returning the exit
status. Exit statuses, the same for every command:

- 0 success;
- 1 the command ran but something failed or there is nothing to work on: a
  file could not be analysed, no database yet ("nothing here yet: run
  `trackprint up LIBRARY`"), the NATS server is not reachable (``replay``);
- 2 usage or configuration error (a bad argument, an unknown command, a data
  directory that is not writable);
- 130 interrupted (Ctrl-C); 141 standard output closed early (``export | head``),
  like any Unix tool killed by SIGPIPE, without a traceback.

The global options (``-v``, ``--log-format``) are accepted before or after
the subcommand (``trackprint status --log-format json``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import pkgutil
import sys

import trackprint
import trackprint.commands
from trackprint import logs

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`
SERVICES = {"watcher", "analyzer", "persister"}  # long-running: their information is logged at INFO


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # after the subcommand the defaults are SUPPRESSed so that they never overwrite what was given before it
    parser.add_argument("-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS,
                        help="more logging (-vv for debug)")
    parser.add_argument("--log-format", choices=("text", "json"), default=None if top else argparse.SUPPRESS,
                        help="log lines as text (default) or JSON objects (env TRACKPRINT_LOG_FORMAT)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trackprint",
        description="Audio fingerprints of a music library, kept in sync in a SQL database.",
        epilog="exit status: 0 ok, 1 something failed or nothing here yet, 2 usage or configuration error",
    )
    parser.add_argument("--version", action="version", version=f"trackprint {trackprint.__version__}")
    _global_options(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(trackprint.commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"trackprint.commands.{module_info.name}")
        module.register(subparsers)
    for sub in subparsers.choices.values():
        known = {option for action in sub._actions for option in action.option_strings}
        if not known & {"-v", "--verbose", "--log-format"}:
            _global_options(sub, top=False)
    return parser


def _command_word(argv: list[str]) -> str | None:
    """The first word that is not a global option (or its value): the subcommand as typed."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--log-format":
            i += 2
            continue
        if word.startswith("-"):
            i += 1
            continue
        return word
    return None


def unknown_command(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """"trackprint: unknown command 'stauts'; did you mean 'status'?" when the subcommand is not one, else None."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    word = _command_word(argv)
    if word is None or word in subparsers.choices:
        return None
    close = difflib.get_close_matches(word, list(subparsers.choices), n=3, cutoff=0.6)
    hint = (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close
            else f"; commands: {', '.join(subparsers.choices)}")
    return f"trackprint: unknown command {word!r}{hint}"


def _quiet_broken_pipe() -> int:
    """Standard output was closed by its reader (``| head``): stop without a traceback, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    problem = unknown_command(parser, argv)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logs.configure(args.verbose, args.log_format,
                   base_level=logging.INFO if args.command in SERVICES else logging.WARNING)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
