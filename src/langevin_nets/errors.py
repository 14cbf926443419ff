"""Exceptions the library raises on purpose."""


class DivergenceError(RuntimeError):
    """A sampler's log density or gradient stopped being finite."""
