"""The official `openai` Python SDK against a running llmux gateway: models, chat, errors, images.

Needs `pip install openai pytest` and a gateway to talk to; the environment and wiring are
described in conftest.py (shared with the other suites of this folder).
"""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import FAULT_MODEL, FAULT_PORT, KEY, MODEL, check_reply, make_client, say

openai = pytest.importorskip("openai")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
    # As OpenAI: usage is streamed only when stream_options.include_usage asks for it.
    assert [c.usage for c in chunks if c.usage is not None] == []


def test_chat_stream_include_usage(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=say(), stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.total_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert chunks[-2].choices[0].finish_reason == "stop"
    # Only the final chunk carries usage, and it is the only one without choices.
    assert [c.usage is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c.choices for c in chunks[:-1])


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
def test_wrong_gateway_key_is_authentication_error():
    with pytest.raises(openai.AuthenticationError) as e:
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
