"""A row's int8 recipe (its YAML ``quant``: seed method and weight rounding) fills in what the user
did not name, for the builds it applies to, and what the user names wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from vacc_deploy.backends import BuildOptions
from vacc_deploy.config import load_row
from vacc_deploy.pipeline import CalibRequest, ModelRequest, build
from vacc_deploy.pipeline.stages import with_row_defaults

from tests.helpers import noise_images

RECIPE_ROW = "realesr_animevideov3_x4"  # its YAML: percentile, equalize, gptq
PLAIN = {"equalize": False, "weight_rounding": "nearest"}


def test_the_rows_rewrites_fill_in_only_an_onnxruntime_int8_build_that_names_none() -> None:
    config = load_row(RECIPE_ROW)
    assert (config.quant.equalize, config.quant.weight_rounding) == (True, "gptq")
    int8 = BuildOptions(precision="int8")
    assert with_row_defaults(config, int8) == BuildOptions(precision="int8", quant="percentile", equalize=True,
                                                           weight_rounding="gptq")
    named = with_row_defaults(config, BuildOptions(precision="int8", quant="max", **PLAIN))
    assert (named.quant, named.equalize, named.weight_rounding) == ("max", False, "nearest")
    half = with_row_defaults(config, BuildOptions(precision="int8", equalize=False))
    assert (half.equalize, half.weight_rounding) == (False, "gptq")
    vacc = with_row_defaults(config, BuildOptions(precision="int8", numerics="vacc"))
    assert (vacc.equalize, vacc.weight_rounding) == (False, "nearest")
    own = with_row_defaults(config, int8, ranges=False)
    assert (own.equalize, own.weight_rounding) == (False, "nearest")
    assert with_row_defaults(config, BuildOptions(precision="fp16")) == BuildOptions(precision="fp16")
    plain = with_row_defaults(load_row("lesrcnn_x2"), int8)
    assert (plain.equalize, plain.weight_rounding) == (False, "nearest")


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    return noise_images(tmp_path_factory.mktemp("calib"), n=2, hw=(40, 40))


@pytest.mark.parametrize("named", [{}, PLAIN])
def test_a_build_of_the_row_applies_its_rewrites_unless_told_otherwise(calib, tmp_path, named) -> None:
    req = ModelRequest(weights="synthetic", shape=(1, 3, 24, 24), calib=CalibRequest(images=calib, num=2),
                       build=BuildOptions(precision="int8", **named))
    built = build(load_row(RECIPE_ROW), req, tmp_path)
    settings = built.manifest["settings"]
    if named:
        assert "equalize" not in settings and "weight_rounding" not in settings
    else:
        assert settings["equalize"] is True and settings["weight_rounding"] == "gptq"
        assert built.manifest["equalize"]["spaces"] > 0 and built.manifest["weight_rounding"]["convs"] > 0
