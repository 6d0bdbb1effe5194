"""Evaluation of a built model: whole-image inference with the row's pre/post-processing and tiling
(:mod:`.upscaler`), the accuracy protocols (:mod:`.protocols`) and the int8 error per layer
(:mod:`.analysis`). Torch-free."""
