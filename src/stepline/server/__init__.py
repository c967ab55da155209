"""``stepline serve``: the HTTP API and web dashboard over a store of runs (the embedded logbook for now)."""
