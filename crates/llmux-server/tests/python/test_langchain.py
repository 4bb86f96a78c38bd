"""LangChain's `ChatOpenAI` against llmux in front of `llmux-mock openai` (issue #12): a tool-calling
agent loop (invoke and stream) and structured output.

Needs `pip install langchain-openai pytest`; the environment and wiring are described in
conftest.py. The upstream must be `llmux-mock openai` (see test_openai_tools.py for what it does).
"""

import pytest
from conftest import KEY, MODEL, REPLY, URL

langchain_openai = pytest.importorskip("langchain_openai")
pydantic = pytest.importorskip("pydantic")

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402


@tool
def get_weather(city: str, unit: str) -> str:
    """Current weather in a city."""
    return f"18 degrees {unit} in {city}"


@tool
def get_time(timezone: str) -> str:
    """Local time in a timezone."""
    return f"14:05 in {timezone}"


TOOLS = {t.name: t for t in (get_weather, get_time)}


def chat_model(**kwargs):
    return langchain_openai.ChatOpenAI(
        base_url=URL, api_key=KEY or "no-key-needed", model=MODEL, max_retries=0, timeout=30, **kwargs
    )


def run_tools(ai, messages, log):
    for call in ai.tool_calls:
        result = TOOLS[call["name"]].invoke(call["args"])
        log.append((call["name"], call["args"], result))
        messages.append(ToolMessage(result, tool_call_id=call["id"]))


def agent_loop(step, prompt, max_turns=4):
    """Runs the model until it answers without tool calls; returns (answer, tool log, turns)."""
    messages, log = [HumanMessage(prompt)], []
    for turn in range(1, max_turns + 1):
        ai = step(messages)
        messages.append(ai)
        if not ai.tool_calls:
            return ai, log, turn
        run_tools(ai, messages, log)
    raise AssertionError(f"no final answer after {max_turns} turns: {messages}")


EXPECTED_LOG = [
    ("get_weather", {"city": "value", "unit": "value"}, "18 degrees value in value"),
    ("get_time", {"timezone": "value"}, "14:05 in value"),
]
EXPECTED_ANSWER = "Tool results: 18 degrees value in value; 14:05 in value"


def test_agent_loop_invoke():
    llm = chat_model().bind_tools(list(TOOLS.values()))
    answer, log, turns = agent_loop(llm.invoke, "Use get_weather for Paris and get_time for Europe/Paris.")
    assert turns == 2
    assert log == EXPECTED_LOG
    assert answer.content == EXPECTED_ANSWER
    assert answer.response_metadata.get("finish_reason") == "stop"


def test_tool_call_message_shape():
    llm = chat_model().bind_tools(list(TOOLS.values()))
    ai = llm.invoke([HumanMessage("get_time please")])
    assert isinstance(ai, AIMessage)
    assert ai.response_metadata.get("finish_reason") == "tool_calls"
    assert [c["name"] for c in ai.tool_calls] == ["get_time"]
    assert ai.tool_calls[0]["id"]
    assert ai.tool_calls[0]["args"] == {"timezone": "value"}
    assert ai.invalid_tool_calls == []


def test_agent_loop_stream():
    llm = chat_model().bind_tools(list(TOOLS.values()))
    seen_chunks = []

    def step(messages):
        aggregate = None
        for chunk in llm.stream(messages):
            seen_chunks.append(chunk)
            aggregate = chunk if aggregate is None else aggregate + chunk
        return aggregate

    answer, log, turns = agent_loop(step, "Use get_weather for Paris and get_time for Europe/Paris.")
    assert turns == 2
    assert log == EXPECTED_LOG
    assert answer.content == EXPECTED_ANSWER
    # The tool calls really streamed: argument fragments in several chunks.
    fragments = [c for c in seen_chunks if any(tc.get("args") for tc in c.tool_call_chunks)]
    assert len(fragments) >= 4, f"expected streamed argument fragments, got {len(fragments)}"


def test_tool_choice_forced():
    llm = chat_model().bind_tools(list(TOOLS.values()), tool_choice="get_time")
    ai = llm.invoke([HumanMessage("get_weather in Paris")])
    assert [c["name"] for c in ai.tool_calls] == ["get_time"]


class Person(pydantic.BaseModel):
    name: str
    age: int
    hobbies: list[str]


def test_structured_output():
    llm = chat_model().with_structured_output(Person)
    assert llm.invoke("Tell me about someone") == Person(name="value", age=1, hobbies=[])


def test_plain_chat_still_works():
    ai = chat_model().invoke("Say hi")
    assert ai.content
    if REPLY:
        assert ai.content == REPLY
    chunks = list(chat_model().stream("Say hi"))
    assert "".join(c.content for c in chunks) == ai.content
