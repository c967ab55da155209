"""Pushing runs to remote backends: the registry of backend URLs, the shipper that follows a run's local
logbook, and one transport per kind (a stepline server, MLflow, Trackio, TrainTrack, LMTracker)."""
