"""Build a row for a precision: fp16, or int8 QDQ from a streamed calibration, on ONNX Runtime, or
the vamc build files (compiled when vamc is installed) for the VACC accelerator."""

from __future__ import annotations

import argparse
import sys

from vacc_deploy.backends import AUTO, backend_names
from vacc_deploy.cli.common import add_force, add_model_args, add_row, request_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_row(parser)
    add_model_args(parser, backends=(*backend_names(artifact="onnx"), *backend_names(artifact="vamc"), AUTO))
    add_force(parser, "build")
    parser.add_argument("--vamc-timeout", type=float, default=None, metavar="S",
                        help="stop vamc compile after S seconds (default: no limit)")


def _print_onnx(config, built, backend: str) -> None:
    from vacc_deploy.backends.ort.options import precision_label

    state = "reused (inputs unchanged)" if built.cached else "built"
    label = precision_label(built.precision, built.numerics)
    print(f"{config.name} {label}{' ' + built.quant if built.quant else ''} ({backend}): {state}")
    print(f"  model    {built.onnx_path}")
    m = built.manifest
    if "calibration" in m:
        c = m["calibration"]
        skipped = c.get("n_skipped_images")  # absent from ranges cached by earlier versions
        print(f"  calib    {c['images']} samples, {c['method']} {c.get('params') or ''}"
              + (f" ({skipped} unreadable images skipped)" if skipped is not None else ""))
        if c.get("seconds_per_image") is not None:
            rss = f", peak RSS {c['peak_rss_mb']:.0f} MB" if c.get("peak_rss_mb") else ""
            print(f"           {c['seconds_per_image']:.2f} s/img, one pass through {c.get('segments', '?')} segment(s){rss}")
        print(f"  float    {', '.join(m['float_layers']) or 'none'} (Conv indices {m['float_layer_indices']})")
        print(f"  weights  {'per-channel' if m['settings']['per_channel'] else 'per-tensor'}, "
              f"{'7-bit (reduce_range)' if m['settings']['reduce_range'] else '8-bit'}"
              + (f", weight_scale {m['settings']['weight_scale']}" if "weight_scale" in m["settings"] else ""))
        if m["settings"].get("activation_bits", 8) != 8:
            print(f"  activations {m['settings']['activation_bits']}-bit")
        if "equalize" in m:
            e = m["equalize"]
            print(f"  equalize {e['channels']} channels in {e['spaces']} spaces, scales "
                  f"{e['scale_min']:.3g}..{e['scale_max']:.3g} ({e['seconds']:.1f} s)")
        if "weight_rounding" in m:
            r = m["weight_rounding"]
            print(f"  rounding GPTQ on {r['convs']} convs, median output-error energy x{r['median_error_ratio']:.2f} "
                  f"of nearest ({r['seconds']:.1f} s)")
        if "vacc_numerics" in m:
            v = m["vacc_numerics"]
            print(f"  int8     TVM rules (emulated): {v['int8_activations']} int8 activation tensors, "
                  f"{v['int8_weights']} int8 weight/bias tensors; float ops: {', '.join(v['float_op_types']) or 'none'}")
        else:
            print(f"  int8 ops {m['settings'].get('int8_ops', 'compute')}")
    if m.get("timings"):
        print("  timings  " + ", ".join(f"{k} {v:.1f}s" for k, v in m["timings"].items()))


def _print_vacc(config, vb) -> None:
    from vacc_deploy.backends.vacc.build import compile_hint

    print(f"{config.name} (vacc): vamc files in {vb.folder}")
    print(f"  yaml     {vb.yaml_path}")
    print(f"  vdsp     {vb.vdsp_json}")
    print(f"  skip     skip_conv_layers {vb.float_layer_indices or '[]'}")
    print(f"  compiled {vb.deploy_dir}" if vb.compiled else f"  note     {compile_hint(vb.yaml_path)}")


def _trial_build(t: dict) -> str:
    """The int8 build of a search trial: ``vacc <weight_scale>`` (emulated) or ``<bits>-bit <ops>``."""
    if t.get("numerics") == "vacc":
        return f"vacc {t['weight_scale']}"
    return f"{t['weight_bits']}-bit {t['int8_ops']}"


def _targets(result: dict) -> str:
    """``a PSNR drop within 0.1 dB (validation drop within 0.03 dB)`` and/or ``fidelity >= 40 dB (...)``."""
    parts = []
    ref = result.get("reference_psnr_db")
    if result.get("target_drop_db") is not None and ref is not None:
        parts.append(f"a PSNR drop within {result['target_drop_db']} dB where fp32 reaches {ref:g} dB (predicted "
                     "from the validation images' int8 noise)")
    elif result.get("target_drop_db") is not None:
        parts.append(f"a PSNR drop within {result['target_drop_db']} dB (validation drop within "
                     f"{result['margin'] * result['target_drop_db']:g} dB)")
    if result.get("target_fidelity_db") is not None:
        parts.append(f"fidelity >= {result['target_fidelity_db']:g} dB to fp32 (validation >= "
                     f"{result['target_fidelity_db'] + result['fidelity_margin']:g} dB)")
    return " and ".join(parts)


def print_search(result: dict, path) -> None:
    """The search's trials table and the choice."""
    print(f"{result['row']}: int8 search for {_targets(result)} on "
          f"{len(result['validation']['images'])} validation images of {result['validation']['folder']} "
          f"(fp32 {result['fp32']['psnr']:.3f} dB, {result['fp32']['ms']:.1f} ms)")
    fid = result.get("target_fidelity_db") is not None
    ref = result.get("reference_psnr_db") is not None
    head = (f"{'method':<14} {'weights':<11} {'int8 build':<13} {'float':>5} {'dPSNR':>7} "
            f"{'at ref.':>7} " * ref + f"{'fidelity ' if fid else ''}{'ms':>8} {'x fp32':>6}  float layers (Conv indices)")
    print(head)
    print("-" * len(head))
    for t in result["trials"]:
        mark = "*" if t == result["chosen"] else " "
        f = (f"{t['predicted_drop_db']:>+7.3f} " if ref else "") + (f"{t['fidelity_db']:>8.2f} " if fid else "")
        print(f"{t['quant']:<14} {'per-channel' if t['per_channel'] else 'per-tensor':<11} {_trial_build(t):<13} "
              f"{len(t['float_layers']):>5} "
              f"{t['drop_db']:>+7.3f} {f}{t['ms']:>8.1f} {t['speedup']:>6.2f}{mark} {t['float_layer_indices']}")
    verdict = "met" if result["met"] else "NOT met (best candidate kept)"
    c = result["chosen"]
    cf = (f", {c['predicted_drop_db']:+.3f} dB at the reference" if ref else "") + (
        f", fidelity {c['fidelity_db']:.2f} dB" if fid else "")
    print(f"target {verdict}: chosen * = {c['quant']}, {_trial_build(c)}, "
          f"{c['drop_db']:+.3f} dB{cf}, {c['speedup']:.2f}x fp32, "
          f"float layers {result['chosen']['float_layer_indices']}; search {path}")


def run(args: argparse.Namespace) -> int:
    from vacc_deploy.config import load_row
    from vacc_deploy.pipeline import build_command

    config = load_row(args.row)
    out = build_command(config, request_from_args(args), args.workdir, vamc_timeout_s=args.vamc_timeout)
    if out.search is not None:
        print_search(*out.search)
    if args.backend == AUTO:
        print(f"backend auto: using {out.backend} ({out.reason})", file=sys.stderr)
    if out.vacc is not None:
        _print_vacc(config, out.vacc)
    if out.emulated:
        print(f"backend {out.backend}: vamc not found on PATH; built the int8 (vacc, emulated) model on "
              "ONNX Runtime instead", file=sys.stderr)
    if out.built is not None and out.built.onnx_path is not None:
        _print_onnx(config, out.built, out.built.backend)
    return 0
