"""Output options: --debug / -v / --quiet before or after the command; help texts are whole
sentences; --quant lists the methods the CLI and the YAML accept."""

from __future__ import annotations

import argparse

import pytest

from vacc_deploy.cli import COMMANDS, build_parser
from vacc_deploy.types import CALIB_METHODS as QUANT_METHODS
from vacc_deploy.calibration.methods import METHODS


@pytest.mark.parametrize("argv, debug, verbose, quiet", [
    (["--debug", "models"], True, False, False),
    (["models", "--debug"], True, False, False),
    (["-v", "models"], False, True, False),
    (["models", "-v"], False, True, False),
    (["-q", "models"], False, False, True),
    (["models", "--quiet"], False, False, True),
    (["models"], False, False, False),
])
def test_output_options_before_or_after_the_command(argv: list[str], debug: bool, verbose: bool, quiet: bool) -> None:
    args = build_parser().parse_args(argv)
    assert (args.debug, args.verbose, args.quiet) == (debug, verbose, quiet)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_texts_are_whole_sentences() -> None:
    parser = build_parser()
    assert parser.description.endswith(".") and "``" not in parser.description
    for name, sub in _subparsers(parser).items():
        assert sub.description.endswith("."), name
        for action in sub._actions:
            if action.help and action.help != argparse.SUPPRESS:
                assert action.help.count("(") == action.help.count(")"), (name, action.help)
    assert set(_subparsers(parser)) == set(COMMANDS)


def test_one_vocabulary_of_quant_methods() -> None:
    # every method a user can name has a calibration class; the only other class is the vacc
    # numerics' own KL rule, which users reach through --numerics vacc --quant kl_divergence
    assert set(METHODS) - set(QUANT_METHODS) == {"kl_divergence_tvm"}
    assert set(QUANT_METHODS) <= set(METHODS)
    pipeline = _subparsers(build_parser())["pipeline"]
    helps = {a.dest: a.help for a in pipeline._actions}
    assert all(m in helps["quant"] for m in QUANT_METHODS)
    assert "(default fp32,fp16,int8)" in helps["precisions"]
    assert pipeline.get_default("precisions") == "fp32,fp16,int8"


def test_build_output_reads_ranges_cached_by_earlier_versions(capsys) -> None:
    """A reused build whose calibration info predates a key (here ``n_skipped_images`` and
    ``segments``, absent from ranges cached by earlier versions) prints, without an internal error."""
    from pathlib import Path

    from vacc_deploy.backends.base import BuiltModel
    from vacc_deploy.cli.build_cmd import _print_onnx
    from vacc_deploy.config import load_row
    from vacc_deploy.spec import ModelSpec

    config = load_row("lesrcnn_x2")
    manifest = {"calibration": {"images": 50, "method": "percentile", "params": {"percentile": 99.99},
                                "seconds_per_image": 0.5, "peak_rss_mb": 100.0},
                "float_layers": ["/conv0/Conv"], "float_layer_indices": [0],
                "settings": {"per_channel": True, "reduce_range": False, "int8_ops": "compute"}}
    built = BuiltModel(row="lesrcnn_x2", spec=ModelSpec(scale=2), input_shape=(1, 3, 128, 128), precision="int8",
                       quant="percentile", onnx_path=Path("model.onnx"), numerics="onnxruntime",
                       manifest=manifest, cached=True)
    _print_onnx(config, built, "onnxruntime")
    out = capsys.readouterr().out
    assert "50 samples, percentile" in out and "unreadable" not in out and "reused" in out
    assert "one pass through ? segment(s)" in out
