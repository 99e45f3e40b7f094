"""Upstream failures reach callers as the gateway's domain errors, never as requests'
exceptions, and never carrying the management API key."""

import logging
import socket
import time
import traceback

import pytest
import requests

from experiments_app import gateway


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _chain(exc: BaseException):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def test_rejected_key_is_unauthorized(upstream, settings):
    settings.UPSTREAM_API_KEY = "mapi_not-a-real-key"

    with pytest.raises(gateway.Unauthorized) as caught:
        gateway.get_client().list_experiments()

    assert caught.value.status == 401


def test_project_the_key_cannot_reach_is_forbidden(gateway_client, upstream):
    with pytest.raises(gateway.Forbidden) as caught:
        gateway_client.create_experiment(key="elsewhere", project_id=upstream.other_project_id)

    assert caught.value.status == 403


def test_unknown_experiment_is_not_found(gateway_client):
    with pytest.raises(gateway.NotFound) as caught:
        gateway_client.get_experiment("987654321")

    assert caught.value.status == 404


def test_invalid_input_carries_the_upstreams_message_and_field(gateway_client, experiment):
    with pytest.raises(gateway.InvalidInput) as caught:
        gateway_client.update_experiment(experiment.id, {"rolloutPercentage": 150})

    assert caught.value.status == 400
    assert caught.value.field == "rolloutPercentage"
    assert "rolloutPercentage" in caught.value.message and "100" in caught.value.message


def test_duplicate_experiment_key_is_invalid_input_not_a_retry(gateway_client, experiment):
    with gateway.recording() as calls, pytest.raises(gateway.InvalidInput):
        gateway_client.create_experiment(key=experiment.key)

    assert [(c.method, c.status) for c in calls] == [("POST", 400)]


def test_persistent_429_surfaces_as_rate_limited_with_retry_after(upstream, settings):
    settings.UPSTREAM_MAX_RETRY_SECONDS = 0.5
    settings.MANAGEMENT_API_FAULTS = "429=1.0:7"

    with pytest.raises(gateway.RateLimited) as caught:
        gateway.get_client().list_experiments()

    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0


def test_persistent_503_surfaces_as_upstream_unavailable_after_bounded_retries(upstream, settings):
    settings.UPSTREAM_MAX_RETRY_SECONDS = 2.5
    settings.MANAGEMENT_API_FAULTS = "503=1.0"  # with Retry-After: 1
    started = time.monotonic()

    with gateway.recording() as calls, pytest.raises(gateway.UpstreamUnavailable) as caught:
        gateway.get_client().list_experiments()

    assert caught.value.status == 503
    assert 2 <= len(calls) <= 3  # it retried a read, honouring Retry-After...
    assert time.monotonic() - started < 6  # ...within the bounded time (generous margin)


def test_slow_upstream_surfaces_as_timeout(upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.2
    settings.UPSTREAM_MAX_RETRY_SECONDS = 0.3
    settings.MANAGEMENT_API_FAULTS = "latency=1.0:0.6"

    with gateway.recording() as calls, pytest.raises(gateway.UpstreamTimeout) as caught:
        gateway.get_client().list_experiments()

    assert caught.value.status is None
    assert calls[0].status is None and calls[0].error == "ReadTimeout"


def test_unreachable_upstream_is_unavailable_and_no_requests_exception_escapes(upstream, settings):
    settings.UPSTREAM_BASE_URL = _closed_port_url()
    settings.UPSTREAM_MAX_RETRY_SECONDS = 0.5

    with pytest.raises(gateway.UpstreamUnavailable) as caught:
        gateway.get_client().get_experiment("1")

    assert not any(isinstance(e, requests.RequestException) for e in _chain(caught.value))
    assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_dropped_connections_on_every_attempt_surface_as_unavailable(upstream, settings):
    settings.UPSTREAM_MAX_RETRY_SECONDS = 0.5
    settings.MANAGEMENT_API_FAULTS = "drop=1.0"

    with pytest.raises(gateway.UpstreamUnavailable) as caught:
        gateway.get_client().list_experiments()

    assert not any(isinstance(e, requests.RequestException) for e in _chain(caught.value))


def test_api_key_never_appears_in_repr_errors_or_logs(upstream, settings, caplog):
    caplog.set_level(logging.DEBUG)
    key = upstream.api_key
    client = gateway.get_client()
    errors = []
    settings.UPSTREAM_MAX_RETRY_SECONDS = 0.3
    for faults in ("", "503=1.0", "drop=1.0", "latency=1.0:0.5"):
        settings.MANAGEMENT_API_FAULTS = faults
        settings.UPSTREAM_READ_TIMEOUT = 0.2 if faults.startswith("latency") else 5.0
        try:
            gateway.get_client().get_experiment("404404")
        except gateway.UpstreamError as exc:
            errors.append(exc)
    settings.UPSTREAM_API_KEY = key[:-2] + "xx"
    try:
        gateway.get_client().list_experiments()
    except gateway.Unauthorized as exc:
        errors.append(exc)

    assert {type(e) for e in errors} >= {gateway.NotFound, gateway.UpstreamUnavailable, gateway.UpstreamTimeout,
                                         gateway.Unauthorized}
    texts = [repr(client), caplog.text] + [
        "".join(traceback.format_exception(e)) + repr(e) + repr(vars(e)) for e in errors]
    assert not any(key in text or key[:-2] in text for text in texts)
    assert "upstream GET /api/1/experiments/404404 status=404" in caplog.text


def test_retry_budget_makes_a_call_give_up_sooner(upstream, settings):
    settings.UPSTREAM_BASE_URL = _closed_port_url()
    settings.UPSTREAM_MAX_RETRY_SECONDS = 30
    started = time.monotonic()

    with gateway.retry_budget(0.3), pytest.raises(gateway.UpstreamUnavailable):
        gateway.get_client().list_experiments()

    assert time.monotonic() - started < 3
