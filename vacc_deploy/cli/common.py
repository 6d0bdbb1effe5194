"""Argument helpers shared by commands: the flags, their defaults (each read from the library's
one statement of it) and the requests they describe."""

from __future__ import annotations

import argparse
from pathlib import Path

from vacc_deploy.backends import BACKENDS, DEFAULT_BACKEND, BuildOptions, SessionOptions
from vacc_deploy.backends.ort import NUMERICS
from vacc_deploy.config import RowConfig, load_row, parse_shape
from vacc_deploy.pipeline.requests import CalibRequest, ModelRequest
from vacc_deploy.types import (
    ACTIVATION_BITS,
    CALIB_METHODS,
    CALIB_MODES,
    DEFAULT_CALIB_MODE,
    DEFAULT_CALIB_NUM,
    DEFAULT_CALIB_SEED,
    DEFAULT_DEGRADATION,
    DEFAULT_OPSET,
    DEFAULT_OVERLAP,
    DEGRADATIONS,
    INT8_OPS,
    PRECISIONS,
    REDUCE_RANGES,
    WEIGHT_ROUNDINGS,
    WEIGHT_SCALES,
)

_DEFAULTS = BuildOptions()


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


def add_opset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N",
                        help=f"ONNX opset of the export (default {DEFAULT_OPSET})")


def row_and_shape(args: argparse.Namespace) -> tuple[RowConfig, tuple[int, int, int, int] | None]:
    config = load_row(args.row)
    return config, (parse_shape(args.shape) if getattr(args, "shape", None) else None)


def add_calib_args(parser: argparse.ArgumentParser, images_flag: str = "--calib-images") -> None:
    """Arguments that make a calibration set."""
    parser.add_argument(images_flag, dest="calib_images", type=Path, default=None, metavar="DIR",
                        help="calibration images (never the evaluation set)")
    parser.add_argument("--num", type=int, default=DEFAULT_CALIB_NUM, metavar="N",
                        help=f"calibration samples (default {DEFAULT_CALIB_NUM})")
    parser.add_argument("--seed", type=int, default=DEFAULT_CALIB_SEED,
                        help=f"calibration sampling seed (default {DEFAULT_CALIB_SEED})")
    parser.add_argument("--calib-mode", "--mode", dest="calib_mode", choices=CALIB_MODES, default=DEFAULT_CALIB_MODE,
                        help="native-scale random crops of the input size, whole images resized, or a mosaic of "
                             "native-scale crops of several images (inputs larger than the images); default "
                             f"{DEFAULT_CALIB_MODE}: crop, or mosaic when no image is half the input")
    parser.add_argument("--degrade", choices=DEGRADATIONS, default=DEFAULT_DEGRADATION,
                        help="degrade calibration images with the BSRGAN model first (blind SR rows)")


def _add_precision_args(parser: argparse.ArgumentParser, multi: bool, precisions: str) -> None:
    methods = ", ".join(CALIB_METHODS)
    if multi:
        parser.add_argument("--precisions", default=precisions, metavar="LIST",
                            help=f"comma-separated precisions among {','.join(PRECISIONS)} (default {precisions})")
        parser.add_argument("--quant", default=None, metavar="LIST",
                            help=f"int8 calibration method(s), comma-separated, among {methods} "
                                 "(default: the row's seed method)")
        parser.add_argument("--numerics", default=None, metavar="LIST",
                            help=f"int8 arithmetic, comma-separated: {', '.join(NUMERICS)} (default "
                                 f"{_DEFAULTS.numerics}; vacc = the VACC card's, emulated on ONNX Runtime)")
    else:
        parser.add_argument("--precision", choices=PRECISIONS, default=_DEFAULTS.precision)
        parser.add_argument("--quant", default=None, metavar="METHOD", choices=CALIB_METHODS,
                            help=f"int8 calibration method: {methods} (default: the row's seed method)")
        parser.add_argument("--numerics", choices=NUMERICS, default=None,
                            help=f"int8 arithmetic (default {_DEFAULTS.numerics}; vacc = the VACC card's, emulated)")


def add_build_args(parser: argparse.ArgumentParser, multi: bool = False, precisions: str = "fp32") -> None:
    """Build options (precision, calibration method, per-channel, float layers); ``multi``: a list of
    precisions (default ``precisions``) and of methods."""
    _add_precision_args(parser, multi, precisions)
    parser.add_argument("--weight-scale", dest="weight_scale", choices=WEIGHT_SCALES, default=None,
                        help=f"vacc numerics / vamc YAML: TVM's weight scale rule (default {_DEFAULTS.weight_scale})")
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
    parser.add_argument("--target-fidelity", type=float, default=None, metavar="DB",
                        help="int8: search as --target-drop does (alone or with it) for a build whose output "
                             "stays within DB dB PSNR of the fp32 output on the validation images (the "
                             "measure for GAN-trained models, whose PSNR to ground truth hides int8 noise)")
    parser.add_argument("--reference-psnr", type=_reference_psnr, default=None, metavar="DB|off",
                        help="--target-drop: judge the drop as predicted for images on which fp32 reaches DB dB "
                             "(e.g. its PSNR on your evaluation set), from the int8 noise measured on the "
                             "validation images; default with the official weights: the row's paper Set5 PSNR where "
                             "it has one; off (or other weights, or a row without one): the drop on those images "
                             "must stay within 0.3x the target")
    parser.add_argument("--max-float-layers", type=int, default=None, metavar="K",
                        help="--target-drop / --target-fidelity: keep at most K more layers in float "
                             "(default: no limit)")
    parser.add_argument("--int8-ops", dest="int8_ops", choices=INT8_OPS, default=_DEFAULTS.int8_ops,
                        help="op types int8 quantizes: compute (Conv/MatMul and the Relu/Clip folded into "
                             "them; default) or all (also Add, Mul, LeakyRelu, Concat, DepthToSpace, Resize)")
    parser.add_argument("--percentile", type=float, default=_DEFAULTS.percentile,
                        help=f"percentile calibration (default {_DEFAULTS.percentile})")
    parser.add_argument("--reduce-range", choices=REDUCE_RANGES, default=_DEFAULTS.reduce_range,
                        help="7-bit int8 weights (auto: on for x86 CPUs without VNNI; default off: sessions "
                             "there use ONNX Runtime's exact int8 kernels)")
    parser.add_argument("--activation-bits", dest="activation_bits", type=int, choices=ACTIVATION_BITS,
                        default=_DEFAULTS.activation_bits,
                        help="int8 activation width: 8 (default) or 16 (uint16 activations with int8 weights; "
                             "run in float by ONNX Runtime's CPU: higher fidelity, not faster)")
    parser.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=None,
                        help="int8 (onnxruntime numerics): rescale channels across layers so that each "
                             "activation tensor's channels share one range (exact in float; one extra pass); "
                             "default: the row's (`vacc-deploy models`)")
    parser.add_argument("--weight-rounding", dest="weight_rounding", choices=WEIGHT_ROUNDINGS,
                        default=None,
                        help="int8 (onnxruntime numerics): nearest or gptq (error-compensating rounding from "
                             "the calibration images' Conv input statistics; slower build); default: the row's "
                             "(`vacc-deploy models`)")
    add_calib_args(parser)


def _reference_psnr(value: str) -> float:
    """``--reference-psnr``: a PSNR in dB, or ``off`` (0: judge on the validation images)."""
    if value.strip().lower() == "off":
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}': expected a PSNR in dB or off") from None


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
    add_opset(parser)
    if backends is not None:
        choices = backends or tuple(BACKENDS)
        parser.add_argument("--backend", default=DEFAULT_BACKEND, choices=choices,
                            help=f"{backends_help(choices)} (default {DEFAULT_BACKEND})")
    parser.add_argument("--overlap", type=int, default=None, metavar="PX",
                        help=f"tile overlap in input pixels (default {DEFAULT_OVERLAP})")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all)")
    add_workdir(parser)


def _single(value: str | None) -> str | None:
    """A single-valued option's value (None for a comma-separated list: the command iterates it)."""
    return value if value and "," not in value else None


def build_options(args: argparse.Namespace) -> BuildOptions:
    """The :class:`BuildOptions` the arguments describe (list-valued options left at their defaults)."""
    given = {"numerics": _single(getattr(args, "numerics", None)),
             "weight_scale": getattr(args, "weight_scale", None),
             "quant": _single(getattr(args, "quant", None))}
    return BuildOptions(**{k: v for k, v in given.items() if v},
                        precision=getattr(args, "precision", _DEFAULTS.precision),
                        per_channel=getattr(args, "per_channel", _DEFAULTS.per_channel),
                        skip_layers=split_list(getattr(args, "skip_layers", "")),
                        float_edges=getattr(args, "float_edges", _DEFAULTS.float_edges),
                        percentile=getattr(args, "percentile", _DEFAULTS.percentile),
                        int8_ops=getattr(args, "int8_ops", _DEFAULTS.int8_ops),
                        target_drop=getattr(args, "target_drop", None),
                        target_fidelity=getattr(args, "target_fidelity", None),
                        reference_psnr=getattr(args, "reference_psnr", None),
                        max_float_layers=getattr(args, "max_float_layers", None),
                        reduce_range=getattr(args, "reduce_range", _DEFAULTS.reduce_range),
                        activation_bits=getattr(args, "activation_bits", _DEFAULTS.activation_bits),
                        equalize=getattr(args, "equalize", None),
                        weight_rounding=getattr(args, "weight_rounding", None))


def request_from_args(args: argparse.Namespace) -> ModelRequest:
    """The :class:`~vacc_deploy.pipeline.ModelRequest` the arguments describe."""
    shape = parse_shape(args.shape) if getattr(args, "shape", None) else None
    calib = CalibRequest(images=args.calib_images, num=args.num, seed=args.seed, mode=args.calib_mode,
                         degrade=args.degrade)
    return ModelRequest(weights=args.weights, shape=shape, opset=getattr(args, "opset", DEFAULT_OPSET),
                        backend=getattr(args, "backend", DEFAULT_BACKEND), build=build_options(args), calib=calib,
                        force=getattr(args, "force", False))


def overlap_of(args: argparse.Namespace) -> int:
    """The tile overlap the arguments ask for (the default when not given)."""
    return DEFAULT_OVERLAP if getattr(args, "overlap", None) is None else args.overlap


def session_options(args: argparse.Namespace) -> SessionOptions:
    return SessionOptions(threads=getattr(args, "threads", None))


def upscaler_from_args(config: RowConfig, args: argparse.Namespace):
    """Build (or reuse) the model the arguments name and return (Upscaler, BuiltModel)."""
    from vacc_deploy.pipeline import upscaler_for

    return upscaler_for(config, request_from_args(args), args.workdir, overlap=overlap_of(args),
                        options=session_options(args))


def add_force(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--force", action="store_true",
                        help=f"{what} again even if a cached one matches (cached ones are verified anyway)")
