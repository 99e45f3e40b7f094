"""Fixtures for the gateway: the embedded Management API on pytest-django's live server,
reached over real HTTP, with a fresh key and isolated rate-budget counters per test."""

import os
import random
import uuid
from dataclasses import dataclass

import pytest

from experiments_app import gateway

PROJECT_ID = "100001"
OTHER_PROJECT_ID = "200002"


@dataclass
class Upstream:
    base_url: str
    api_key: str
    project_id: str
    other_project_id: str
    budget_prefix: str


@pytest.fixture
def upstream(live_server, transactional_db, settings):
    from management_api.auth import api_key_create

    _, raw_key = api_key_create(name="gateway-tests", project_ids=[PROJECT_ID])
    api_key_create(name="someone-else", project_ids=[OTHER_PROJECT_ID])
    run = uuid.uuid4().hex[:12]
    settings.UPSTREAM_BASE_URL = live_server.url
    settings.UPSTREAM_API_KEY = raw_key
    settings.UPSTREAM_PROJECT_ID = PROJECT_ID
    settings.UPSTREAM_CONNECT_TIMEOUT = 2.0
    settings.UPSTREAM_READ_TIMEOUT = 5.0
    settings.UPSTREAM_MAX_RETRY_SECONDS = 15.0
    settings.UPSTREAM_BACKOFF_BASE_SECONDS = 0.02
    settings.UPSTREAM_RATE_PER_SECOND = 90.0
    settings.UPSTREAM_DAILY_QUOTA = 100_000
    settings.UPSTREAM_BUDGET_KEY_PREFIX = f"test:gateway:{run}"
    settings.MANAGEMENT_API_RATE_REDIS_PREFIX = f"test:mapi:{run}:"
    settings.MANAGEMENT_API_RATE_PER_SECOND = 100
    settings.MANAGEMENT_API_FAULTS = ""
    gateway.reset_client()
    yield Upstream(base_url=live_server.url, api_key=raw_key, project_id=PROJECT_ID,
                   other_project_id=OTHER_PROJECT_ID, budget_prefix=settings.UPSTREAM_BUDGET_KEY_PREFIX)
    settings.MANAGEMENT_API_FAULTS = ""
    gateway.reset_client()


@pytest.fixture
def gateway_client(upstream):
    return gateway.get_client()


@pytest.fixture
def seeded_random():
    """The live server draws its injected faults from the same ``random`` as the gateway's
    jitter, in causal order: seeding makes a fault run repeatable (GATEWAY_FAULT_SEED picks
    another sequence)."""
    state = random.getstate()
    random.seed(int(os.environ.get("GATEWAY_FAULT_SEED", "20261129")))
    yield
    random.setstate(state)


@pytest.fixture
def experiment(gateway_client):
    created = gateway_client.create_experiment(key=f"exp-{uuid.uuid4().hex[:8]}", name="Checkout button")
    return gateway_client.get_experiment(created.id)
