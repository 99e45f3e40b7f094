from experiments_app import gateway


def test_healthz_reports_database_broker_and_upstream_without_login(client, embedded_upstream):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "broker": True, "upstream": True,
    }


def test_healthz_answers_503_when_the_upstream_refuses_the_key(client, embedded_upstream, settings):
    settings.UPSTREAM_API_KEY = "revoked-or-wrong-key-123"
    gateway.reset_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["upstream"]["ok"] is False
    assert "revoked-or-wrong-key-123" not in response.content.decode()


def test_healthz_answers_503_when_the_upstream_is_down(client, db, settings):
    settings.UPSTREAM_BASE_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    settings.UPSTREAM_MAX_RETRY_SECONDS = 0
    gateway.reset_client()
    try:
        response = client.get("/healthz")
    finally:
        gateway.reset_client()
    assert response.status_code == 503
    assert response.json()["checks"]["upstream"]["ok"] is False
