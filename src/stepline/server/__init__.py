"""``stepline serve``: the query and ingest APIs, LMTracker's and Trackio's APIs and the web dashboard over a
store of runs (a logbook folder or PostgreSQL, see ``stores``)."""
