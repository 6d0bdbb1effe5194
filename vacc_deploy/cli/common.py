"""Argument helpers shared by commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from vacc_deploy.backends import BACKENDS, DEFAULT_BACKEND
from vacc_deploy.config import QUANT_METHODS, RowConfig, load_row, parse_shape


def split_list(text: str | None) -> tuple[str, ...]:
    """Items of a comma-separated option (``fp32,int8``), blanks dropped; () for None/empty."""
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def add_row(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("row", metavar="ROW", help="a row name (see `vacc-deploy models`) or a path to a row YAML")


def add_weights(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=None, metavar="W",
                        help="default: official, else house; or official, house, synthetic, or a checkpoint path")


def add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                        help="work folder (default ./work); outputs go to DIR/<row>/")


def add_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", type=str, default=None, metavar="1x3xHxW",
                        help="fixed input shape (default: the row's)")


def row_and_shape(args: argparse.Namespace) -> tuple[RowConfig, tuple[int, int, int, int] | None]:
    config = load_row(args.row)
    return config, (parse_shape(args.shape) if getattr(args, "shape", None) else None)


def add_calib_args(parser: argparse.ArgumentParser, images_flag: str = "--calib-images") -> None:
    """Arguments that make a calibration set."""
    parser.add_argument(images_flag, dest="calib_images", type=Path, default=None, metavar="DIR",
                        help="calibration images (never the evaluation set)")
    parser.add_argument("--num", type=int, default=50, metavar="N", help="calibration samples (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="calibration sampling seed (default 0)")
    parser.add_argument("--calib-mode", "--mode", dest="calib_mode", choices=("crop", "resize"), default="crop",
                        help="native-scale random crops of the input size (default) or whole images resized")
    parser.add_argument("--degrade", choices=("none", "bsrgan"), default="none",
                        help="degrade calibration images with the BSRGAN model first (blind SR rows)")


def add_build_args(parser: argparse.ArgumentParser, multi: bool = False, precisions: str = "fp32") -> None:
    """Build options (precision, calibration method, per-channel, float layers); ``multi``: a list of
    precisions (default ``precisions``) and of methods."""
    methods = ", ".join(QUANT_METHODS)
    if multi:
        parser.add_argument("--precisions", default=precisions, metavar="LIST",
                            help=f"comma-separated precisions among fp32,fp16,int8 (default {precisions})")
        parser.add_argument("--quant", default=None, metavar="LIST",
                            help=f"int8 calibration method(s), comma-separated, among {methods} "
                                 "(default: the row's seed method)")
    else:
        parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
        parser.add_argument("--quant", default=None, metavar="METHOD", choices=QUANT_METHODS,
                            help=f"int8 calibration method: {methods} (default: the row's seed method)")
    from vacc_deploy.backends.ort.build import NUMERICS, BuildOptions
    from vacc_deploy.backends.vacc.emulation import WEIGHT_SCALES

    if multi:
        parser.add_argument("--numerics", default=None, metavar="LIST",
                            help=f"int8 arithmetic, comma-separated: {', '.join(NUMERICS)} (default "
                                 f"{BuildOptions.numerics}; vacc = the VACC card's, emulated on ONNX Runtime)")
    else:
        parser.add_argument("--numerics", choices=NUMERICS, default=None,
                            help=f"int8 arithmetic (default {BuildOptions.numerics}; vacc = the VACC card's, emulated)")
    parser.add_argument("--weight-scale", dest="weight_scale", choices=WEIGHT_SCALES, default=None,
                        help=f"vacc numerics / vamc YAML: TVM's weight scale rule (default {BuildOptions.weight_scale})")
    parser.add_argument("--per-channel", dest="per_channel", action="store_true", default=True,
                        help="per-channel int8 weights (default)")
    parser.add_argument("--per-tensor", dest="per_channel", action="store_false", help="per-tensor int8 weights")
    parser.add_argument("--skip-layers", default="", metavar="NAMES",
                        help="Conv layers kept in float: comma-separated node names or 0-based Conv indices")
    parser.add_argument("--float-edges", dest="float_edges", action="store_true", default=True,
                        help="keep the convs that read the image and write the output in float (default)")
    parser.add_argument("--int8-edges", dest="float_edges", action="store_false",
                        help="quantize the edge convs too (fully int8)")
    parser.add_argument("--target-drop", type=float, default=None, metavar="DB",
                        help="int8: search the method, per-channel and fewest float layers that keep the PSNR "
                             "drop on a validation split of the calibration images within DB (cached)")
    parser.add_argument("--max-float-layers", type=int, default=None, metavar="K",
                        help="--target-drop: keep at most K more layers in float (default: no limit)")
    parser.add_argument("--int8-ops", dest="int8_ops", choices=("compute", "all"), default="compute",
                        help="op types int8 quantizes: compute (Conv/MatMul and the Relu/Clip folded into "
                             "them; default) or all (also Add, Mul, LeakyRelu, Concat, DepthToSpace, Resize)")
    parser.add_argument("--percentile", type=float, default=99.99, help="percentile calibration (default 99.99)")
    parser.add_argument("--reduce-range", choices=("auto", "on", "off"), default="off",
                        help="7-bit int8 weights (auto: on for x86 CPUs without VNNI; default off: sessions "
                             "there use ONNX Runtime's exact int8 kernels)")
    parser.add_argument("--activation-bits", dest="activation_bits", type=int, choices=(8, 16), default=8,
                        help="int8 activation width: 8 (default) or 16 (uint16 activations with int8 weights; "
                             "run in float by ONNX Runtime's CPU: higher fidelity, not faster)")
    add_calib_args(parser)


def backends_help(names: tuple[str, ...]) -> str:
    """``name (summary)`` of each registered backend in ``names``, for ``--help``."""
    return "; ".join(f"{n}: {BACKENDS[n].summary}" if n in BACKENDS else n for n in names)


def add_model_args(parser: argparse.ArgumentParser, backends: tuple[str, ...] | None = (), multi: bool = False,
                   precisions: str = "fp32") -> None:
    """Arguments that name the model a command runs: weights, shape, backend, build options.
    ``backends``: the ``--backend`` choices (``()``: every registered backend, read when the parser
    is made); ``None`` leaves out ``--backend`` (a command that takes its own list, e.g. benchmark).
    ``precisions``: the default of ``--precisions`` (with ``multi``)."""
    add_build_args(parser, multi, precisions)
    add_weights(parser)
    add_shape(parser)
    parser.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX opset of the export")
    if backends is not None:
        choices = backends or tuple(BACKENDS)
        parser.add_argument("--backend", default=DEFAULT_BACKEND, choices=choices,
                            help=f"{backends_help(choices)} (default {DEFAULT_BACKEND})")
    parser.add_argument("--overlap", type=int, default=None, metavar="PX",
                        help="tile overlap in input pixels (default 16)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all)")
    add_workdir(parser)


def request_from_args(args: argparse.Namespace):
    """The :class:`~vacc_deploy.pipeline.ModelRequest` the arguments describe."""
    from vacc_deploy.backends.ort.build import BuildOptions
    from vacc_deploy.pipeline import CalibRequest, ModelRequest

    shape = parse_shape(args.shape) if args.shape else None
    skips = split_list(args.skip_layers)
    quant = getattr(args, "quant", None)
    numerics = getattr(args, "numerics", None)
    extra = {k: v for k, v in (("numerics", numerics), ("weight_scale", getattr(args, "weight_scale", None)))
             if v and "," not in v}
    build = BuildOptions(**extra, precision=getattr(args, "precision", "fp32"), quant=None if quant and "," in quant else quant,
                         per_channel=args.per_channel, skip_layers=skips, float_edges=args.float_edges,
                         percentile=args.percentile, int8_ops=getattr(args, "int8_ops", "compute"),
                         target_drop=getattr(args, "target_drop", None),
                         max_float_layers=getattr(args, "max_float_layers", None),
                         reduce_range=args.reduce_range, activation_bits=getattr(args, "activation_bits", 8))
    calib = CalibRequest(images=args.calib_images, num=args.num, seed=args.seed, mode=args.calib_mode,
                         degrade=args.degrade)
    return ModelRequest(weights=args.weights, shape=shape, opset=getattr(args, "opset", 17),
                        backend=getattr(args, "backend", DEFAULT_BACKEND), build=build, calib=calib,
                        force=getattr(args, "force", False))


def upscaler_from_args(config: RowConfig, args: argparse.Namespace):
    """Build (or reuse) the model the arguments name and return (Upscaler, BuiltModel)."""
    from vacc_deploy.backends import SessionOptions
    from vacc_deploy.imaging.tiling import DEFAULT_OVERLAP
    from vacc_deploy.pipeline import upscaler_for

    overlap = DEFAULT_OVERLAP if args.overlap is None else args.overlap
    return upscaler_for(config, request_from_args(args), args.workdir, overlap=overlap,
                        options=SessionOptions(threads=args.threads))


def add_force(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--force", action="store_true",
                        help=f"{what} again even if a cached one matches (cached ones are verified anyway)")
