"""Benchmark of built models: latency, memory and FLOPs (:mod:`.measure`), one configuration per
worker process (:mod:`.worker`), a row's configurations (:mod:`.runner`) and the one-sentence
explanations of surprising results (:mod:`.notes`). It measures; it never builds. Torch-free."""
