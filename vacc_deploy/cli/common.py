"""Argument helpers shared by commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from vacc_deploy.config import RowConfig, load_row, parse_shape


def add_row(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("row", metavar="ROW", help="a row name (see `vacc-deploy models`) or a path to a row YAML")


def add_weights(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=None, metavar="W",
                        help="official (default), synthetic, or a checkpoint path")


def add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                        help="work folder (default ./work); outputs go to DIR/<row>/")


def add_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", type=str, default=None, metavar="1x3xHxW",
                        help="fixed input shape (default: the row's)")


def row_and_shape(args: argparse.Namespace) -> tuple[RowConfig, tuple[int, int, int, int] | None]:
    config = load_row(args.row)
    return config, (parse_shape(args.shape) if getattr(args, "shape", None) else None)
