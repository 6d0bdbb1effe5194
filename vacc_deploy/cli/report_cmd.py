"""Render a run's report again from DIR/report.json, or compare several runs on one page (--compare)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vacc_deploy.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="report folder(s) holding report.json (a run's work folder)")
    parser.add_argument("--compare", action="store_true",
                        help="write one page comparing the runs in DIR1 DIR2 ... (compare.md / compare.html)")
    parser.add_argument("--output", type=Path, default=None, metavar="DIR",
                        help="where --compare writes (default: the current folder); "
                             "without --compare: where the report is written (default: DIR itself)")


def _labels(dirs: list[Path]) -> list[str]:
    """Run labels: the folder names, made unique with their parents when they clash."""
    names = [d.resolve().name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{d.resolve().parent.name}/{d.resolve().name}" for d in dirs]


def run(args: argparse.Namespace) -> int:
    from vacc_deploy.report.compare import write_compare
    from vacc_deploy.report.model import ReportData
    from vacc_deploy.report.render import write_report

    datas = [ReportData.load(Path(d) / "report.json") for d in args.dirs]
    if args.compare:
        if len(datas) < 2:
            raise UsageError("report --compare: give at least two report folders")
        md, page = write_compare(datas, args.output or Path("."), _labels(args.dirs))
        print(f"compared {len(datas)} runs: {md} and {page}")
        return 0
    if len(datas) > 1:
        raise UsageError("report: one folder at a time (use --compare for several)")
    md, page = write_report(datas[0], args.output or args.dirs[0])
    print(f"{datas[0].row}: {md} and {page}")
    return 0
