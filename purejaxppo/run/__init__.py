"""Host shell of one training run: YAML run config, chunked and checkpointed runner,
run-folder files, plots, progress display, evaluation, compile cache, host devices.

Imports the pure core (`purejaxppo.*`); the core never imports this package.
"""
