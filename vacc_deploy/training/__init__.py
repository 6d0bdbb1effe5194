"""Training house weights (imports torch): paired patches (:mod:`.data`), the trainer
(:mod:`.loop`), resumable state and weight files (:mod:`.state`).

``scripts/train.py`` is the command-line entry; ``docs/house_weights.md`` says how the shipped house
weights were made.
"""
