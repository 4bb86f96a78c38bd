"""The official `anthropic` Python SDK against a running llmux gateway (`POST /v1/messages`).

Self-contained: needs only `pip install anthropic pytest` and a gateway to talk to.

Environment (as for test_openai_sdk.py):
  LLMUX_GATEWAY_URL       required. Gateway base URL, e.g. http://127.0.0.1:1337/v1 (a trailing
                          "/v1" is removed: the SDK adds it). Every test is skipped without it.
  LLMUX_GATEWAY_API_KEY   the gateway key, if any (sent as `x-api-key`, as the SDK does). When
                          set, the authentication test runs too.
  LLMUX_TEST_MODEL        a chat model the upstream serves (default `fake-model`).
  LLMUX_TEST_REPLY        the exact reply the upstream gives (default: `llmux-mock openai`'s);
                          set it empty to only check non-empty.

The tool-use round trip needs an upstream that answers tool calls; it is skipped (with the
reason) when the upstream answers a forced tool call with text.
"""

import json
import os

import pytest

anthropic = pytest.importorskip("anthropic")

URL = os.environ.get("LLMUX_GATEWAY_URL", "").rstrip("/")
ROOT = URL[: -len("/v1")] if URL.endswith("/v1") else URL
KEY = os.environ.get("LLMUX_GATEWAY_API_KEY") or None
MODEL = os.environ.get("LLMUX_TEST_MODEL") or "fake-model"
REPLY = os.environ.get("LLMUX_TEST_REPLY", "Hello from the fake upstream!")

pytestmark = pytest.mark.skipif(not URL, reason="LLMUX_GATEWAY_URL is not set")

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city"}},
        "required": ["location"],
    },
}


def make_client(api_key=None):
    return anthropic.Anthropic(
        base_url=ROOT,
        api_key=api_key if api_key is not None else (KEY or "no-key-needed"),
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


def test_create(client):
    m = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=say(),
        stop_sequences=["\n\n\n"],
        metadata={"user_id": "sdk-test"},
        # recent SDKs take the sampling fields only through extra_body
        extra_body={"temperature": 0.2, "top_p": 0.9},
        extra_headers={"anthropic-beta": "fine-grained-tool-streaming-2025-05-14"},
    )
    assert m.type == "message"
    assert m.role == "assistant"
    assert m.id.startswith("msg_")
    assert m.content[0].type == "text"
    check_reply(m.content[0].text)
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


def test_stream_helper(client):
    with client.messages.stream(model=MODEL, max_tokens=100, messages=say()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check_reply(text)
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_raw_stream_event_order(client):
    events = list(client.messages.create(model=MODEL, max_tokens=100, messages=say(), stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert events[0].message.content == []
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert deltas and all(d.delta.type == "text_delta" for d in deltas)
    check_reply("".join(d.delta.text for d in deltas))
    assert events[-2].delta.stop_reason == "end_turn"


def test_tool_use_round_trip(client):
    first = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=say("What is the weather in Paris?"),
    )
    uses = [b for b in first.content if b.type == "tool_use"]
    if not uses:
        pytest.skip("the upstream answered a forced tool call with text: it does not answer tool calls")
    use = uses[0]
    assert first.stop_reason == "tool_use"
    assert use.name == "get_weather"
    assert isinstance(use.input, dict)
    second = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],
        messages=say("What is the weather in Paris?")
        + [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": json.dumps({"celsius": 15})}],
            },
        ],
    )
    assert second.content, "no answer after the tool result"
    assert second.stop_reason in ("end_turn", "tool_use")


def test_tool_definitions_and_results_are_accepted(client):
    # a conversation that already holds a tool call and its result (any upstream answers it)
    m = client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "Paris"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "15 C"}]},
        ],
    )
    assert m.content and m.content[0].type == "text"


def test_bad_request_is_bad_request_error(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=MODEL, max_tokens=100, messages=[])
    assert e.value.status_code == 400
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "messages" in e.value.body["error"]["message"]


def test_server_tools_are_refused(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=say(),
            tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
        )
    assert "web_search_20250305" in e.value.body["error"]["message"]


def test_unknown_model_is_not_found_error(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model-anywhere", max_tokens=10, messages=say())
    assert e.value.body["error"]["type"] == "not_found_error"


def test_count_tokens(client):
    r = client.messages.count_tokens(model=MODEL, messages=say("a" * 400))
    assert r.input_tokens == 106


@pytest.mark.skipif(not KEY, reason="LLMUX_GATEWAY_API_KEY is not set")
def test_wrong_key_is_authentication_error():
    with pytest.raises(anthropic.AuthenticationError) as e:
        make_client(api_key="wrong-key").messages.create(model=MODEL, max_tokens=10, messages=say())
    assert e.value.body["error"]["type"] == "authentication_error"
