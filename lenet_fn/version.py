"""The library's version, written once: the package, its checkpoints and its metadata read it here."""

__version__ = "0.1.0"
