"""`GET /metrics` of a running llmux gateway, read with `prometheus_client`'s OpenMetrics parser.

Needs `pip install openai pytest prometheus-client` and the same environment as
test_openai_sdk.py (LLMUX_GATEWAY_URL, LLMUX_GATEWAY_API_KEY, LLMUX_TEST_MODEL). The counters
are compared before and after requests this test sends, so other traffic earlier does not
matter (the suite runs its tests one after another).
"""

import os
import urllib.error
import urllib.request

import pytest

openai = pytest.importorskip("openai")
parser = pytest.importorskip("prometheus_client.openmetrics.parser")

URL = os.environ.get("LLMUX_GATEWAY_URL", "").rstrip("/")
if URL.endswith("/v1"):
    URL = URL[: -len("/v1")]
KEY = os.environ.get("LLMUX_GATEWAY_API_KEY") or None
MODEL = os.environ.get("LLMUX_TEST_MODEL") or "fake-model"

pytestmark = pytest.mark.skipif(not URL, reason="LLMUX_GATEWAY_URL is not set")


def fetch(path, key=KEY, headers=None):
    req = urllib.request.Request(URL + path, headers=dict(headers or {}))
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def samples():
    """{(sample name, frozenset(labels)): value} of the current exposition."""
    status, headers, text = fetch("/metrics")
    assert status == 200, text
    assert headers.get("Content-Type", "").startswith("application/openmetrics-text")
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(snapshot, name, **labels):
    return snapshot.get((name, frozenset(labels.items())), 0.0)


def client():
    return openai.OpenAI(base_url=URL + "/v1", api_key=KEY or "none", max_retries=0, timeout=30)


def test_counters_match_the_requests_sent():
    before = samples()
    c = client()
    for _ in range(3):
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count me"}])
    stream = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "count me"}], stream=True
    )
    for _ in stream:
        pass
    after = samples()

    route = {"route": "/v1/chat/completions", "status": "200"}
    assert value(after, "llmux_http_requests_total", **route) - value(
        before, "llmux_http_requests_total", **route
    ) == 4
    ok = [
        (k, v - before.get(k, 0.0))
        for k, v in after.items()
        if k[0] == "llmux_attempts_total" and ("outcome", "ok") in k[1] and ("model", MODEL) in k[1]
    ]
    assert sum(d for _, d in ok) == 4, ok
    ttft = sum(
        v - before.get(k, 0.0)
        for k, v in after.items()
        if k[0] == "llmux_time_to_first_token_seconds_count"
    )
    assert ttft == 4
    out_tokens = sum(
        v - before.get(k, 0.0)
        for k, v in after.items()
        if k[0] == "llmux_tokens_total" and ("direction", "out") in k[1]
    )
    assert out_tokens > 0
    assert value(after, "llmux_open_streams") == 0


@pytest.mark.skipif(not KEY, reason="the gateway has no key")
def test_metrics_need_the_key():
    status, _, _ = fetch("/metrics", key=None)
    assert status == 401
    before = samples()
    fetch("/metrics", key=None)
    after = samples()
    labels = {"code": "missing_api_key"}
    assert value(after, "llmux_errors_total", **labels) - value(
        before, "llmux_errors_total", **labels
    ) == 1


def test_request_id_round_trip_through_the_sdk():
    raw = client().chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "id please"}],
        extra_headers={"x-request-id": "sdk-trace-1"},
    )
    assert raw.headers["x-request-id"] == "sdk-trace-1"
    generated = client().chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "id please"}]
    )
    assert generated.headers["x-request-id"].startswith("req_")


def test_ready_and_health():
    status, _, body = fetch("/ready", key=None)
    assert status == 200, body
    status, _, _ = fetch("/health", key=None)
    assert status == 200
