"""The neutral model must survive storage byte-for-byte: agents move between providers and
restarts, and anything lost in a JSON round trip is lost from their conversations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironspire.messages import (
    Accumulator,
    Document,
    Finish,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolResult,
    Usage,
    UsageEvent,
    dump_event,
    dump_history,
    load_event,
    load_history,
)

short = st.text(max_size=30)
json_scalar = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
opt = st.none() | short
texts = st.builds(Text, short)
images = st.one_of(
    st.builds(Image, st.sampled_from(["image/png", "image/jpeg"]), data=st.text("ABCD+/=", min_size=1, max_size=20)),
    st.builds(Image, st.just("image/png"), url=st.just("https://example.test/a.png")),
)
documents = st.one_of(
    st.builds(Document, st.sampled_from(["application/pdf", "text/plain"]),
              data=st.text("ABCD+/=", min_size=1, max_size=20), name=opt),
    st.builds(Document, st.just("application/pdf"), url=st.just("https://example.test/a.pdf"), name=opt),
)
tool_calls = st.builds(
    ToolCall, short, short, st.dictionaries(st.text(max_size=5), json_value, max_size=3), opt, opt, opt
)
tool_results = st.builds(ToolResult, short, short, st.tuples(texts, images) | st.tuples(texts), st.booleans())
reasoning = st.builds(Reasoning, short, opt, opt, opt, opt)
parts = st.one_of(texts, images, documents, tool_calls, tool_results, reasoning)
usages = st.builds(Usage, *(st.integers(0, 10**9) for _ in range(5)),
                   st.sampled_from(["reported", "estimated", "unknown"]))
messages = st.builds(
    Message,
    st.sampled_from(["system", "user", "assistant", "tool"]),
    st.lists(parts, max_size=5).map(tuple),
    opt,
    opt,
    st.none() | usages,
    st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter", "error", "other"]),
    st.dictionaries(st.text(max_size=5), json_value, max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(messages)
def test_message_json_round_trip_is_lossless(message: Message) -> None:
    assert Message.from_json(message.to_json()) == message


# the same messages with floats in their free-form values (costs, scores in tool arguments)
floaty_value = st.recursive(
    json_scalar | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
floaty_messages = st.builds(
    Message,
    st.sampled_from(["system", "user", "assistant", "tool"]),
    st.lists(parts | st.builds(ToolCall, short, short, st.dictionaries(short, floaty_value, max_size=3)),
             max_size=5).map(tuple),
    opt, opt, st.none() | usages,
    st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter", "error", "other"]),
    st.dictionaries(st.text(max_size=5), floaty_value, max_size=3),
)


def _pydantic_form(message: Message) -> str:
    from pydantic import TypeAdapter

    return TypeAdapter(Message).dump_json(message).decode()


@settings(max_examples=300, deadline=None)
@given(floaty_messages)
def test_the_stored_form_is_pydantics_and_reads_back_without_it(message: Message) -> None:
    """A turn writes and reads history with the stdlib (no pydantic on a fresh process's turn),
    in the very form pydantic writes and reads, so rows from before and after read the same."""
    import json

    stored = message.to_json()
    assert json.loads(stored) == json.loads(_pydantic_form(message))
    assert Message.from_stored(stored) == message
    assert Message.from_stored(_pydantic_form(message)) == message  # rows written before
    assert Message.from_json(stored) == message


def test_values_the_stdlib_cannot_write_are_stored_as_pydantic_writes_them() -> None:
    import datetime
    import json
    import math

    odd = Message("assistant", (Text("hi"),), meta={"cost": math.nan, "at": datetime.date(2026, 12, 3)})
    assert json.loads(odd.to_json()) == json.loads(_pydantic_form(odd)) == {
        **json.loads(_pydantic_form(odd)), "meta": {"cost": None, "at": "2026-12-03"}}
    assert Message.from_stored(odd.to_json()).meta == {"cost": None, "at": "2026-12-03"}


@pytest.mark.parametrize("row", [
    '{"role": "robot", "parts": []}',
    '{"role": "user", "parts": [{"type": "image", "media_type": "image/png"}]}',
    '{"role": "user", "parts": [{"type": "video", "url": "x"}]}',
    '{"role": "assistant", "parts": [], "finish_reason": "bored"}',
    '{"role": "tool", "parts": [{"type": "tool_result", "call_id": "c", "tool_name": "f",'
    ' "content": [{"type": "tool_call", "id": "x", "name": "g", "arguments": {}}]}]}',
    '{"role": "assistant", "parts": [], "usage": {"input": 1, "state": "guessed"}}',
    '{"parts": []}',
    'not json',
])
def test_a_stored_row_of_another_shape_is_a_validation_error_not_a_wrong_message(row: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Message.from_stored(row)


def test_a_stored_row_with_fields_added_later_or_missing_reads_as_pydantic_reads_it() -> None:
    old = '{"role": "assistant", "parts": [{"text": "hi", "type": "text", "lang": "en"}], "usage": {"input": 3}}'
    assert Message.from_stored(old) == Message.from_json(old) == Message("assistant", (Text("hi"),), usage=Usage(3))


@settings(max_examples=50, deadline=None)
@given(st.lists(messages, max_size=4))
def test_history_round_trip_is_lossless(history: list[Message]) -> None:
    assert load_history(dump_history(history)) == history


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.builds(TextDelta, short),
        st.builds(ReasoningDelta, short, opt, opt),
        st.builds(ToolCallStart, st.integers(0, 9), short, short, opt),
        st.builds(ToolCallDelta, st.integers(0, 9), short),
        st.builds(ToolCallEnd, st.integers(0, 9)),
        st.builds(UsageEvent, usages),
        st.builds(Finish, st.sampled_from(["stop", "length", "tool_calls", "content_filter", "error"]), opt),
    )
)
def test_stream_event_round_trip(event: object) -> None:
    assert load_event(dump_event(event)) == event  # type: ignore[arg-type]


def test_invalid_json_is_rejected_with_a_validation_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Message.from_json('{"role": "robot", "parts": []}')
    with pytest.raises(ValidationError):
        Message.from_json('{"role": "user", "parts": [{"type": "image", "media_type": "image/png"}]}')


def test_image_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError):
        Image("image/png")
    with pytest.raises(ValueError):
        Image("image/png", data="AAAA", url="https://x.test/a.png")


def test_accumulator_keeps_part_order_and_joins_fragments() -> None:
    events = [
        ReasoningDelta("let me "),
        ReasoningDelta("think"),
        ReasoningDelta(signature="sig-1"),
        TextDelta("Calling "),
        TextDelta("tools."),
        ToolCallStart(0, "call_a", "get_weather"),
        ToolCallStart(1, "call_b", "get_time"),
        ToolCallDelta(0, '{"city": '),
        ToolCallDelta(1, '{"tz": "UTC"}'),
        ToolCallDelta(0, '"Paris"}'),
        ToolCallEnd(0),
        ToolCallEnd(1),
        UsageEvent(Usage(input=10, output=3)),
        UsageEvent(Usage(input=10, output=7, reasoning=2)),
        Finish("stop", "end_turn"),
    ]
    msg = Accumulator("claude-api", "claude-sonnet-5").feed(events).message()
    assert msg.parts == (
        Reasoning("let me think", "sig-1", None, "claude-api", "claude-sonnet-5"),
        Text("Calling tools."),
        ToolCall("call_a", "get_weather", {"city": "Paris"}, None, "claude-api", "claude-sonnet-5"),
        ToolCall("call_b", "get_time", {"tz": "UTC"}, None, "claude-api", "claude-sonnet-5"),
    )
    assert msg.usage == Usage(input=10, output=7, reasoning=2)
    # a "stop" that carries tool calls is normalised to tool_calls, as Gemini and Ollama need
    assert msg.finish_reason == "tool_calls"


def test_accumulator_starts_a_new_reasoning_block_after_a_signature() -> None:
    msg = Accumulator().feed([
        ReasoningDelta("a"), ReasoningDelta(signature="s1"), ReasoningDelta("b"), ReasoningDelta(signature="s2"),
    ]).message()
    assert [(p.text, p.signature) for p in msg.parts if isinstance(p, Reasoning)] == [("a", "s1"), ("b", "s2")]


def test_broken_tool_arguments_are_kept_verbatim() -> None:
    msg = Accumulator().feed([ToolCallStart(0, "c", "f"), ToolCallDelta(0, '{"a": 1')]).message()
    assert msg.tool_calls[0].arguments == {"_raw": '{"a": 1'}


def test_arguments_before_start_are_an_error() -> None:
    with pytest.raises(ValueError, match="before its start"):
        Accumulator().add(ToolCallDelta(3, "{}"))


def test_usage_adds_and_counts_prompt() -> None:
    u = Usage(1, 2, 3, 4, 5) + Usage(10, 20, 30, 40, 50)
    assert u == Usage(11, 22, 33, 44, 55)
    assert u.prompt == 11 + 33 + 44
    assert u.total == 11 + 22 + 33 + 44


def test_document_needs_exactly_one_source_and_is_told_from_an_image_in_json() -> None:
    with pytest.raises(ValueError):
        Document("application/pdf")
    with pytest.raises(ValueError):
        Document("application/pdf", data="JVBER", url="https://x.test/a.pdf")
    message = Message.user("Summarise this.", Document("application/pdf", data="JVBERi0x", name="Q3 report.pdf"))
    back = Message.from_json(message.to_json())
    assert back == message and isinstance(back.parts[1], Document)


def test_unknown_usage_survives_storage_and_is_not_a_free_request() -> None:
    unknown = Usage.unknown()
    assert not unknown.known and Usage().known
    message = Message("assistant", (Text("hi"),), "mistral", "m", unknown, "stop")
    assert Message.from_json(message.to_json()).usage == unknown
    assert Message.from_json(message.to_json()).usage != Usage()
    # a sum is only as certain as its least certain term
    assert (Usage(1, 1) + unknown).state == "unknown"
    assert (Usage(1, 1) + Usage(2, 2, state="estimated")).state == "estimated"
    # history stored before the state existed reads as reported counts
    old = '{"role": "assistant", "parts": [], "usage": {"input": 3, "output": 1}}'
    assert Message.from_json(old).usage == Usage(3, 1)
