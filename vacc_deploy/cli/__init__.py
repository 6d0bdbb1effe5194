"""The ``vacc-deploy`` command line. Only this package prints and chooses exit codes:
0 success, 1 failure, 2 usage or configuration error, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
No traceback without --debug.

Each command is a module with ``add_arguments(parser)`` and ``run(args) -> int``; :data:`COMMANDS`
maps command names to them (a plain dict).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from types import ModuleType

from vacc_deploy import __version__
from vacc_deploy.cli import checks, faults
from vacc_deploy.cli import (
    analyze_cmd, benchmark_cmd, build_cmd, calib_cmd, eval_cmd, export_cmd, models_cmd, pipeline_cmd, report_cmd,
    run_cmd,
)
from vacc_deploy.errors import VaccError

COMMANDS: dict[str, ModuleType] = {
    "models": models_cmd,
    "export": export_cmd,
    "calib": calib_cmd,
    "build": build_cmd,
    "analyze": analyze_cmd,
    "run": run_cmd,
    "eval": eval_cmd,
    "benchmark": benchmark_cmd,
    "pipeline": pipeline_cmd,
    "report": report_cmd,
}


DESCRIPTION = ("Take super-resolution networks from PyTorch to ONNX, int8/fp16 builds on ONNX Runtime or the "
               "Vastai VACC, and measure them (accuracy, speed, report).")
EPILOG = ("Run 'vacc-deploy COMMAND --help' for a command's options. Exit codes: 0 success, 1 failure, "
          "2 usage or configuration error, 130 interrupted.")


def _output_options(default: object) -> argparse.ArgumentParser:
    """--debug / -v / --quiet, accepted before and after the command (the command's copy has no
    defaults of its own, so it never overrides what was given before the command)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("--debug", action="store_true", default=default, help="show tracebacks and debug logs")
    g.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logs of vacc-deploy")
    g.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="no progress bars or stage lines, only warnings, errors and results")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vacc-deploy", description=DESCRIPTION, epilog=EPILOG,
                                     parents=[_output_options(False)])
    parser.add_argument("--version", action="version", version=f"vacc-deploy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        doc = _summary(module.__doc__)
        command = sub.add_parser(name, help=doc, description=doc, parents=[_output_options(argparse.SUPPRESS)])
        module.add_arguments(command)
        command.set_defaults(flags=_flags(command))
    return parser


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Option name (an argument's ``dest``, the request field a library error names) -> its flag."""
    flags: dict[str, str] = {}
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        long = [s for s in action.option_strings if s.startswith("--")]
        if long and action.dest not in flags:
            flags[action.dest] = long[0]
    return flags


def error_line(exc: VaccError, flags: dict[str, str]) -> str:
    """The CLI's one-line message of a library error: the flag of the option at fault in front
    (library messages do not name flags), else the option's name, else the message alone."""
    if exc.option is None:
        return str(exc)
    return f"{flags.get(exc.option, exc.option.replace('_', ' '))}: {exc}"


def _summary(doc: str | None) -> str:
    """A module docstring's first sentence (which may span lines)."""
    text = " ".join((doc or "").split())
    return text.split(". ")[0].rstrip(".") + "."


class _Format(logging.Formatter):
    """INFO lines as they are (progress), other levels prefixed (``WARNING: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno == logging.INFO else f"{record.levelname}: {text}"


def _configure_logging(args: argparse.Namespace) -> None:
    """Log to stderr: our own handler on the root logger (replacing the one an earlier ``main`` call
    added, leaving any other in place); --quiet / -v / --debug set the ``vacc_deploy`` level."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(sys.stderr)
    handler.setFormatter(_Format("%(message)s"))
    handler.addFilter(_OncePerCommand())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO)
    own = logging.WARNING if args.quiet else logging.DEBUG if (args.verbose or args.debug) else logging.INFO
    logging.getLogger("vacc_deploy").setLevel(own)


class _OncePerCommand(logging.Filter):
    """Show each distinct warning once per command: the stages of one run look the weights up one
    after another and would repeat the same house-weights warning (the report keeps it)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        text = record.getMessage()
        if text in self._seen:
            return False
        self._seen.add(text)
        return True


class _Handler(logging.StreamHandler):
    """The CLI's stderr handler (a class of its own, so a second ``main`` call can find it)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        with faults.sigterm_as_interrupt():
            checks.check_args(args)  # every option, before the first stage
            return COMMANDS[args.command].run(args)
    except VaccError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"vacc-deploy: error: {error_line(exc, getattr(args, 'flags', {}))}", file=sys.stderr)
        return exc.exit_code
    except faults.Terminated:
        print("vacc-deploy: terminated by SIGTERM (nothing half-written was kept; rerun to complete)", file=sys.stderr)
        return faults.EXIT_SIGTERM
    except KeyboardInterrupt:
        print("vacc-deploy: interrupted (nothing half-written was kept; rerun to complete)", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line unless --debug
        if args.debug:
            raise
        signal_exc = faults.interrupt_behind(exc)
        if signal_exc is not None:  # a signal that landed in an import or a C extension
            terminated = isinstance(signal_exc, faults.Terminated)
            print(f"vacc-deploy: {'terminated by SIGTERM' if terminated else 'interrupted'} (nothing half-written "
                  "was kept; rerun to complete)", file=sys.stderr)
            return faults.EXIT_SIGTERM if terminated else 130
        fault = (faults.describe_os_error(exc) if isinstance(exc, OSError) else None) or faults.describe_memory_error(exc)
        if fault:  # the environment, not a bug: a full disk, a read-only folder, too little memory
            print(f"vacc-deploy: error: {fault}", file=sys.stderr)
            return 1
        print(f"vacc-deploy: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
