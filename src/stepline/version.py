"""stepline's version, in one place: the package, the run metadata and the server report it."""

__version__ = "0.1.0"
