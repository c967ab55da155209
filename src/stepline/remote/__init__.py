"""Pushing runs to a stepline server: the HTTP client, and the shipper that follows a run's local logbook."""
