"""The run loop, run directories, checkpoints, plots and the CLI."""

from jaxrl.run.train import NonFiniteError, TrainResult, enable_compilation_cache, resume, take_run, train

__all__ = ["train", "resume", "TrainResult", "take_run", "NonFiniteError", "enable_compilation_cache"]
