"""The official `openai` Python SDK's Responses API calls (`client.responses.*`) against a running
llmux gateway in front of `llmux-mock openai` (environment: see conftest.py).

They rely on the mock's documented behaviour (FakeOpenAi of llmux-testkit): its `prompt_tokens`
count the words of every message it received (so the `previous_response_id` test sees the whole
conversation reach it), it calls a tool the last user message names, with arguments generated
from the tool's schema, and answers `Tool results: <outputs>` after tool results.
"""

import json

import pytest
from conftest import MODEL, REPLY, check_reply

openai = pytest.importorskip("openai")

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def words(text):
    return len(text.split())


def test_create(client):
    r = client.responses.create(
        model=MODEL,
        input="Say hi",
        instructions="Be brief.",
        max_output_tokens=50,
        temperature=0.2,
        top_p=0.9,
        metadata={"suite": "sdk"},
        reasoning={"effort": "low"},
    )
    assert r.object == "response"
    assert r.id.startswith("resp_")
    assert r.status == "completed"
    check_reply(r.output_text)
    message = r.output[-1]
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "output_text"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.metadata == {"suite": "sdk"}
    assert r.instructions == "Be brief."
    assert r.max_output_tokens == 50


def test_create_with_input_items(client):
    r = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "input_text", "text": "Say hi"}]},
        ],
    )
    check_reply(r.output_text)


def test_stream_helper(client):
    kinds = []
    deltas = []
    with client.responses.stream(model=MODEL, input="Say hi") as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for k in [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]:
        assert k in kinds, k
    check_reply("".join(deltas))
    assert final.status == "completed"
    check_reply(final.output_text)
    assert final.usage.total_tokens > 0


def test_raw_stream_sequence_numbers(client):
    events = list(client.responses.create(model=MODEL, input="Say hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1


def test_previous_response_id_follow_up(client):
    first = client.responses.create(model=MODEL, input="Say hi")
    second = client.responses.create(
        model=MODEL, input="And once more", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    check_reply(second.output_text)
    # the upstream counts the words of every message it got: the first turn, its answer, the
    # new input
    if REPLY:
        expected = words("Say hi") + words(first.output_text) + words("And once more")
        assert second.usage.input_tokens == expected

    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="x", previous_response_id=first.id)


def test_store_false_is_not_kept(client):
    r = client.responses.create(model=MODEL, input="Say hi", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_structured_output_parse(client):
    pydantic = pytest.importorskip("pydantic")

    class Weather(pydantic.BaseModel):
        city: str
        temperature: float

    r = client.responses.parse(model=MODEL, input="Weather in Paris?", text_format=Weather)
    assert isinstance(r.output_parsed, Weather)
    assert r.text.format.type == "json_schema"
    assert r.text.format.name == "Weather"


def test_unsupported_fields_are_refused(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="x", tools=[{"type": "web_search"}])
    assert e.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="x", background=True)
    assert e.value.body["param"] == "background"


def test_function_call_round_trip(client):
    first = client.responses.create(
        model=MODEL, input="Use get_weather for Paris, please.", tools=[WEATHER]
    )
    calls = [i for i in first.output if i.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert call.id.startswith("fc_")
    assert call.call_id
    assert call.status == "completed"
    assert json.loads(call.arguments) == {"city": "value"}
    assert first.output_text == ""

    # streamed, the SDK accumulates the call's arguments from the deltas
    kinds = []
    with client.responses.stream(
        model=MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.function_call_arguments.delta":
                # the helper's accumulation of the deltas so far
                assert event.snapshot.endswith(event.delta)
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    streamed = [i for i in final.output if i.type == "function_call"]
    assert streamed and json.loads(streamed[0].arguments) == {"city": "value"}

    # the round trip: the client runs the tool and sends its output
    output = json.dumps({"temperature_c": 18})
    answer = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": output}],
    )
    assert answer.status == "completed"
    assert answer.output_text == f"Tool results: {output}"

    # the same without the store: the client sends the whole history itself
    answer = client.responses.create(
        model=MODEL,
        store=False,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Use get_weather for Paris, please."},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": output},
        ],
    )
    assert answer.output_text == f"Tool results: {output}"
