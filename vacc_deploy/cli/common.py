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


def add_model_args(parser: argparse.ArgumentParser, backends: tuple[str, ...] = ("onnxruntime", "torch")) -> None:
    """Arguments that name the model a command runs: weights, shape, backend, build options."""
    add_weights(parser)
    add_shape(parser)
    parser.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX opset of the export")
    parser.add_argument("--backend", default="onnxruntime", choices=backends,
                        help="onnxruntime (fixed-shape model, tiled) or torch (reference, whole image)")
    parser.add_argument("--overlap", type=int, default=None, metavar="PX",
                        help="tile overlap in input pixels (default 16)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all)")
    add_workdir(parser)


def request_from_args(args: argparse.Namespace):
    """The :class:`~vacc_deploy.pipeline.ModelRequest` the arguments describe."""
    from vacc_deploy.pipeline import ModelRequest

    shape = parse_shape(args.shape) if args.shape else None
    return ModelRequest(weights=args.weights, shape=shape, opset=args.opset, backend=args.backend)


def upscaler_from_args(config: RowConfig, args: argparse.Namespace):
    """Build (or reuse) the model the arguments name and return (Upscaler, BuiltModel)."""
    from vacc_deploy.backends import SessionOptions
    from vacc_deploy.imaging.tiling import DEFAULT_OVERLAP
    from vacc_deploy.pipeline import upscaler_for

    overlap = DEFAULT_OVERLAP if args.overlap is None else args.overlap
    return upscaler_for(config, request_from_args(args), args.workdir, overlap=overlap,
                        options=SessionOptions(threads=args.threads))
