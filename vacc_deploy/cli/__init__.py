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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vacc-deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vacc-deploy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        doc = (module.__doc__ or "").strip().splitlines()[0]
        module.add_arguments(sub.add_parser(name, help=doc, description=doc))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        with faults.sigterm_as_interrupt():
            checks.check_args(args)  # every option, before the first stage
            return COMMANDS[args.command].run(args)
    except VaccError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"vacc-deploy: error: {exc}", file=sys.stderr)
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
