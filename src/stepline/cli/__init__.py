"""The ``stepline`` command line: list, show and export runs of a logbook."""
