"""The ``stepline`` command line: ``list``, ``show``, ``export``, ``serve``, ``sync`` and ``server`` (users,
tokens, migrate)."""
