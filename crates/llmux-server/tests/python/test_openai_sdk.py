"""The official `openai` Python SDK against a running llmux gateway, unchanged.

Self-contained: needs only `pip install openai pytest` and a gateway to talk to.

Environment:
  LLMUX_GATEWAY_URL       required. Gateway base URL, e.g. http://127.0.0.1:1337/v1
                          ("/v1" is appended when missing). Every test is skipped without it.
  LLMUX_GATEWAY_API_KEY   the key the gateway was started with (`llmux serve --api-key`), if any.
                          When set, the 401/403 tests run too.
  LLMUX_TEST_MODEL        a chat model the upstream serves (default `fake-model`, the default of
                          `llmux-mock openai`).
  LLMUX_TEST_REPLY        the exact reply the upstream gives (default: `llmux-mock openai`'s
                          "Hello from the fake upstream!"); set it empty to only check non-empty.
  LLMUX_TEST_FAULT_PORT   optional, with LLMUX_TEST_FAULT_MODEL: this test serves a failing
  LLMUX_TEST_FAULT_MODEL  upstream on 127.0.0.1:<port> (every chat completion gets 429 with
                          `Retry-After: 30`); the gateway must route LLMUX_TEST_FAULT_MODEL (e.g.
                          `faulty:fault-model`, an openai-compat instance named `faulty` with base
                          URL http://127.0.0.1:<port>/v1) there. The RateLimitError test is skipped
                          unless both are set.

Typical wiring:
  llmux-mock openai --port 18080 &
  llmux serve --upstream http://127.0.0.1:18080/v1 --bind 127.0.0.1:18081 &
  LLMUX_GATEWAY_URL=http://127.0.0.1:18081/v1 pytest crates/llmux-server/tests/python
"""

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

openai = pytest.importorskip("openai")

URL = os.environ.get("LLMUX_GATEWAY_URL", "").rstrip("/")
if URL and not URL.endswith("/v1"):
    URL += "/v1"
KEY = os.environ.get("LLMUX_GATEWAY_API_KEY") or None
MODEL = os.environ.get("LLMUX_TEST_MODEL") or "fake-model"
REPLY = os.environ.get("LLMUX_TEST_REPLY", "Hello from the fake upstream!")
FAULT_PORT = os.environ.get("LLMUX_TEST_FAULT_PORT")
FAULT_MODEL = os.environ.get("LLMUX_TEST_FAULT_MODEL")

pytestmark = pytest.mark.skipif(not URL, reason="LLMUX_GATEWAY_URL is not set")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_client(api_key=None, headers=None):
    return openai.OpenAI(
        base_url=URL,
        api_key=api_key if api_key is not None else (KEY or "no-key-needed"),
        default_headers=headers,
        max_retries=0,
        timeout=30,
    )


@pytest.fixture(scope="module")
def client():
    return make_client()


def say(text="Say hi"):
    return [{"role": "user", "content": text}]


def check_reply(text):
    assert text, "empty reply"
    if REPLY:
        assert text == REPLY


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL
    assert model.object == "model"
    assert model.owned_by
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model-anywhere")


def test_chat_non_stream(client):
    r = client.chat.completions.create(model=MODEL, messages=say())
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    check_reply(r.choices[0].message.content)
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.total_tokens > 0
    extra = r.model_dump()
    assert extra.get("provider"), "the `provider` extension field is missing"


def test_chat_stream(client):
    stream = client.chat.completions.create(model=MODEL, messages=say(), stream=True)
    chunks = list(stream)
    assert chunks, "no chunks"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check_reply(text)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage is not None and last.usage.total_tokens > 0


def test_chat_stream_include_usage(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=say(), stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_chat_params_and_extensions_accepted(client):
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "developer", "content": "Be brief."}] + say(),
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        presence_penalty=0.1,
        frequency_penalty=0.1,
        stop=["\n\n\n"],
        seed=7,
        extra_body={"conversation": None},
    )
    check_reply(r.choices[0].message.content)


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model-anywhere", messages=say())
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        list(client.chat.completions.create(model="no-such-model-anywhere", messages=say(), stream=True))


def test_unknown_provider_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model=MODEL, messages=say(), extra_body={"provider": "NoSuchProvider"})
    assert e.value.code == "provider_not_found"


def test_wrong_field_type_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=say(), temperature="hot")
    assert e.value.param == "temperature"


def test_remote_image_url_is_bad_request(client):
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert e.value.param == "messages[0].content[1].image_url.url"


def test_data_uri_image_is_accepted(client):
    png = base64.b64encode(PNG_MAGIC + b"\x00\x00\x00\rIHDR").decode()
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert r.choices[0].message.content


def test_images_url(client):
    r = client.images.generate(model=MODEL, prompt="a red square", size="256x256")
    assert r.data and r.data[0].url and r.data[0].url.startswith("http")


def test_images_b64_json(client):
    r = client.images.generate(model=MODEL, prompt="a red square", response_format="b64_json")
    data = base64.b64decode(r.data[0].b64_json)
    assert data.startswith(PNG_MAGIC)


@pytest.mark.skipif(not KEY, reason="LLMUX_GATEWAY_API_KEY is not set")
def test_missing_gateway_key_is_authentication_error():
    with pytest.raises(openai.AuthenticationError) as e:
        # the SDK insists on a key; replacing its Authorization header sends none
        no_key = make_client(headers={"Authorization": "Basic bm8ta2V5"})
        no_key.chat.completions.create(model=MODEL, messages=say())
    assert e.value.code == "missing_api_key"


@pytest.mark.skipif(not KEY, reason="LLMUX_GATEWAY_API_KEY is not set")
def test_wrong_gateway_key_is_permission_denied():
    with pytest.raises(openai.PermissionDeniedError) as e:
        make_client(api_key="definitely-wrong").models.list()
    assert e.value.code == "invalid_api_key"


class _RateLimitedUpstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream that rate-limits every chat completion."""

    def _send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "fault-model", "object": "model"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        error = {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}
        self._send(429, error, [("retry-after", "30")])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def rate_limited_upstream():
    server = ThreadingHTTPServer(("127.0.0.1", int(FAULT_PORT)), _RateLimitedUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(not (FAULT_PORT and FAULT_MODEL), reason="LLMUX_TEST_FAULT_PORT/_MODEL are not set")
def test_rate_limit_is_rate_limit_error(client, rate_limited_upstream):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model=FAULT_MODEL, messages=say())
    assert e.value.response.headers.get("retry-after") == "30"
    with pytest.raises(openai.RateLimitError):
        list(client.chat.completions.create(model=FAULT_MODEL, messages=say(), stream=True))
