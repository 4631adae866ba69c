"""orch: the node — HTTP front end (Quart-Trio on Hypercorn), CLI, configuration, logging and wiring."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("orch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
