"""Shared configuration of the client-library suites against a running llmux gateway.

Environment:
  LLMUX_GATEWAY_URL       required. Gateway base URL, e.g. http://127.0.0.1:1337/v1
                          ("/v1" is appended when missing). Every test is skipped without it.
  LLMUX_GATEWAY_API_KEY   the key the gateway was started with (`llmux serve --api-key`), if any.
                          When set, the 401/403 tests run too.
  LLMUX_TEST_MODEL        a chat model the upstream serves (default `fake-model`, the default of
                          `llmux-mock openai`).
  LLMUX_TEST_REPLY        the exact reply the upstream gives (default: `llmux-mock openai`'s
                          "Hello from the fake upstream!"); set it empty to only check non-empty.
  LLMUX_TEST_MOCK_URL     optional: the root URL of the upstream when it is `llmux-mock openai
                          --record` (e.g. http://127.0.0.1:18080); the tests that check what the
                          upstream received (via its GET /__mock/requests) run only with it.
  LLMUX_TEST_FAULT_PORT   optional, with LLMUX_TEST_FAULT_MODEL: a test serves a failing
  LLMUX_TEST_FAULT_MODEL  upstream on 127.0.0.1:<port> (see test_openai_sdk.py).

The tool-calling, structured-output and pass-through suites (test_openai_tools.py,
test_langchain.py) need the upstream to be `llmux-mock openai` (FakeOpenAi of llmux-testkit):
they rely on its documented tool-call, `response_format` and `x_fake_received` behaviour.

Typical wiring:
  llmux-mock openai --record --port 18080 &
  llmux serve --upstream http://127.0.0.1:18080/v1 --bind 127.0.0.1:18081 &
  LLMUX_GATEWAY_URL=http://127.0.0.1:18081/v1 LLMUX_TEST_MOCK_URL=http://127.0.0.1:18080 \\
    pytest crates/llmux-server/tests/python
"""

import os

import pytest

URL = os.environ.get("LLMUX_GATEWAY_URL", "").rstrip("/")
if URL and not URL.endswith("/v1"):
    URL += "/v1"
KEY = os.environ.get("LLMUX_GATEWAY_API_KEY") or None
MODEL = os.environ.get("LLMUX_TEST_MODEL") or "fake-model"
REPLY = os.environ.get("LLMUX_TEST_REPLY", "Hello from the fake upstream!")
MOCK_URL = os.environ.get("LLMUX_TEST_MOCK_URL", "").rstrip("/")
FAULT_PORT = os.environ.get("LLMUX_TEST_FAULT_PORT")
FAULT_MODEL = os.environ.get("LLMUX_TEST_FAULT_MODEL")


def pytest_collection_modifyitems(config, items):
    if URL:
        return
    skip = pytest.mark.skip(reason="LLMUX_GATEWAY_URL is not set")
    for item in items:
        item.add_marker(skip)


def make_client(api_key=None, headers=None):
    """An `openai.OpenAI` client of the gateway (no retries, so every error shows)."""
    import openai

    return openai.OpenAI(
        base_url=URL,
        api_key=api_key if api_key is not None else (KEY or "no-key-needed"),
        default_headers=headers,
        max_retries=0,
        timeout=30,
    )


@pytest.fixture(scope="session")
def client():
    pytest.importorskip("openai")
    return make_client()


def say(text="Say hi"):
    return [{"role": "user", "content": text}]


def check_reply(text):
    assert text, "empty reply"
    if REPLY:
        assert text == REPLY
