"""Every upstream call is logged and can be collected under a correlation id."""

import logging

from experiments_app import gateway


def test_each_call_is_logged_with_method_path_status_latency_attempt_and_correlation_id(gateway_client,
                                                                                         experiment, caplog):
    caplog.set_level(logging.INFO, logger="experiments_app.gateway")

    with gateway.correlation("cr-123"):
        gateway_client.get_experiment(experiment.id)

    [record] = [r for r in caplog.records if r.name == "experiments_app.gateway"]
    assert (record.upstream_method, record.upstream_path, record.upstream_status) == (
        "GET", f"/api/1/experiments/{experiment.id}", 200)
    assert record.attempt == 1 and record.correlation_id == "cr-123" and record.latency_ms > 0
    assert "correlation_id=cr-123" in record.getMessage() and "status=200" in record.getMessage()


def test_recording_collects_every_attempt_under_the_callers_correlation_id(gateway_client, experiment, settings):
    settings.MANAGEMENT_API_FAULTS = "429=1.0:0"
    client = gateway.get_client()

    with gateway.correlation("bulk-7"), gateway.recording() as calls:
        settings.UPSTREAM_MAX_RETRY_SECONDS = 0.2
        try:
            gateway.get_client().get_experiment(experiment.id)
        except gateway.RateLimited:
            pass
        settings.MANAGEMENT_API_FAULTS = ""
        gateway.get_client().list_variants(experiment.id)

    assert client is not gateway.get_client()  # settings changes rebuild the client
    assert len(calls) >= 3
    assert all(isinstance(c, gateway.CallRecord) and c.correlation_id == "bulk-7" for c in calls)
    assert [c.attempt for c in calls[:-1]] == list(range(1, len(calls)))
    assert {c.status for c in calls[:-1]} == {429}
    assert (calls[-1].method, calls[-1].path, calls[-1].status, calls[-1].attempt) == (
        "GET", f"/api/1/experiments/{experiment.id}/variants", 200, 1)


def test_without_a_correlation_id_each_operation_gets_its_own(gateway_client, experiment):
    with gateway.recording() as outer:
        gateway_client.get_experiment(experiment.id)
        with gateway.recording() as inner:
            gateway_client.list_variants(experiment.id)

    assert len(outer) == 2 and inner == outer[1:]
    assert outer[0].correlation_id != outer[1].correlation_id
    assert all(c.correlation_id.startswith("gw-") for c in outer)
    assert gateway.current_correlation_id() is None
