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
