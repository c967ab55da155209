"""Which transport a backend URL names: a stepline server (``http://``) or a peer (``trackio+``, ``lmtracker+``).

    transport = transport_for("trackio+http://127.0.0.1:7860?write_token=T", token=None)
"""

from __future__ import annotations

from stepline.remote.client import RemoteClient
from stepline.remote.lmtracker import SCHEME as LMTRACKER_SCHEME
from stepline.remote.lmtracker import LMTrackerTransport, parse_lmtracker_url
from stepline.remote.mlflow import SCHEME as MLFLOW_SCHEME
from stepline.remote.mlflow import MLflowTransport, parse_mlflow_url
from stepline.remote.shipper import Transport
from stepline.remote.trackio import SCHEME as TRACKIO_SCHEME
from stepline.remote.trackio import TrackioTransport, parse_trackio_url
from stepline.remote.traintrack import SCHEME as TRAINTRACK_SCHEME
from stepline.remote.traintrack import TrainTrackTransport, parse_traintrack_url


def transport_for(url: str, token: str | None) -> Transport:
    """The transport of a URL that :func:`stepline.config.remote_backends` accepted."""
    if url.startswith(TRAINTRACK_SCHEME):
        return TrainTrackTransport(parse_traintrack_url(url))
    if url.startswith(MLFLOW_SCHEME):
        return MLflowTransport(parse_mlflow_url(url))
    if url.startswith(LMTRACKER_SCHEME):
        return LMTrackerTransport(*parse_lmtracker_url(url))
    if url.startswith(TRACKIO_SCHEME):
        base, write_token = parse_trackio_url(url)
        return TrackioTransport(base, write_token)
    return RemoteClient(url, token)  # a stepline server: config.remote_backends checked every URL given
