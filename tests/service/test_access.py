"""Who may call what, against real servers: the admin token, the CORS policy, the per-client rate limit."""
from __future__ import annotations

import pytest
from pydantic import SecretStr

from service.schemas import ErrorResponse

pytestmark = pytest.mark.integration
EVIL = "https://evil.example"


def test_admin_is_disabled_without_a_token(http):
    r = http.post("/admin/reload", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403 and "LEXVLA_ADMIN_TOKEN" in ErrorResponse.model_validate(r.json()).detail


def test_admin_needs_the_configured_token(served):
    srv = served(admin_token=SecretStr("s3cret-token"))
    with srv.client() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
            r = http.post("/admin/reload", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text
        ok = http.post("/admin/reload", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.json()["switched"] is False


def test_cors_is_closed_by_default(http):
    r = http.post("/search", json={"query": "a red circle", "k": 1}, headers={"Origin": EVIL})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers  # the browser hides the answer
    pre = http.options("/admin/reload", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "authorization"})  # fmt: skip
    assert "access-control-allow-origin" not in pre.headers and pre.status_code >= 400


def test_cors_allows_only_the_configured_origins(served):
    srv = served(cors_origins=["https://app.example"])
    with srv.client() as http:
        ok = http.post("/search", json={"query": "a red circle", "k": 1}, headers={"Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in ok.headers["access-control-expose-headers"]
        pre = http.options("/search", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "content-type"})  # fmt: skip
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://app.example"
        other = http.post("/search", json={"query": "a red circle", "k": 1}, headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in other.headers
        refused = http.options("/search", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        # the admin token never travels cross-site: authorization is not an allowed header
        pre = http.options("/admin/reload", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                                     "Access-Control-Request-Headers": "authorization"})  # fmt: skip
        assert pre.status_code == 400


def test_rate_limit_answers_429_with_retry_after(served):
    srv = served(rate_limit_per_s=0.1, rate_limit_burst=3, redis_url="")
    with srv.client() as http:
        statuses = [http.post("/search", json={"query": "a red circle", "k": 1}).status_code for _ in range(6)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429, 429]
        r = http.get("/images/nope.png")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "the limit is 0.1 a second" in ErrorResponse.model_validate(r.json()).detail
        assert all(http.get("/healthz").status_code == 200 for _ in range(10))  # probes are never limited
        assert http.get("/readyz").status_code == 200 and http.get("/metrics").status_code == 200
        assert 'lexvla_errors_total{kind="rate_limited"}' in http.get("/metrics").text
