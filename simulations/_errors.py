"""Errors of the simulations package, rooted in one class."""


class SimulationError(Exception):
    """Root of every error this package raises."""


class ScenarioError(SimulationError, ValueError):
    """A scenario file or parameter is invalid (the user's input, not a bug)."""
