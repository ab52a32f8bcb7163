"""Switching providers mid-conversation: a history produced on each protocol family, stored and
reloaded, then continued on every other one, must be encoded by the target's rules.

The histories come from ``producers`` (recorded traffic where it holds the content, else bodies
built to the documented shape; each source says which). Each pair goes the way a real switch
after a restart goes: the history is dumped to JSON and loaded back, the agent's request is
built, the workspace pre-flight check runs with its default policies, and the target adapter
encodes it. ``rules`` then checks the encoded request (ids, pairing, roles, signatures, system
prompt, image, no prefill).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from ironspire.errors import CapabilityError
from ironspire.messages import Document, Message, Reasoning, ToolCall, dump_history, load_history
from ironspire.protocols.base import ChatRequest, ForeignReasoning
from ironspire.workspace import preflight

from .producers import SOURCES, Produced, produce
from .rules import Expect, check, check_common, reasoning_fields
from .targets import TARGETS, encode, make_target

PAIRS = [(s, t) for s in SOURCES for t in TARGETS]


def reloaded(produced: Produced) -> tuple[Message, ...]:
    """The history as a restarted workspace reads it back from storage."""
    return tuple(load_history(dump_history(produced.messages)))


def request_for(produced: Produced, foreign_reasoning: ForeignReasoning = "drop") -> ChatRequest:
    return ChatRequest(messages=reloaded(produced), system=produced.system, tools=produced.tools,
                       foreign_reasoning=foreign_reasoning)


# --- the produced histories themselves ---------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_produced_history_carries_its_origin_and_survives_storage(source: str, realdata: Path) -> None:
    produced = produce(source, realdata)
    target = make_target(source)
    assistant = [m for m in produced.messages if m.role == "assistant"]
    assert assistant and all(m.provider == target.provider.id and m.model == target.model.id for m in assistant)
    calls = [p for m in assistant for p in m.parts if isinstance(p, ToolCall)]
    reasoning = [p for m in assistant for p in m.parts if isinstance(p, Reasoning)]
    assert all(p.provider == target.provider.id for p in [*calls, *reasoning])
    if source == "claude-sdk":
        assert not calls  # the CLI runs its own tools (see producers)
    else:
        assert calls
    if source in ("openai", "kimi"):
        assert not reasoning  # neither exposes reasoning
    else:
        assert any(r.text for r in reasoning)
    if source in ("anthropic", "gemini", "bedrock", "claude-sdk"):
        signed = [r.signature for r in reasoning if r.signature] + [c.signature for c in calls if c.signature]
        assert signed
    assert produced.messages[-1].role == "user"
    assert reloaded(produced) == produced.messages


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target_name"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
def test_switch_encodes_by_the_targets_rules(source: str, target_name: str, realdata: Path) -> None:
    produced = produce(source, realdata)
    target = make_target(target_name)
    request = preflight.check(request_for(produced), target)

    encoded = encode(target_name, request, target)

    check(encoded, Expect(source, target_name, target, request))


@pytest.mark.parametrize(("source", "target_name"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
def test_text_policy_gives_foreign_reasoning_as_text_never_its_signature(
    source: str, target_name: str, realdata: Path
) -> None:
    produced = produce(source, realdata)
    target = make_target(target_name)
    request = preflight.check(request_for(produced, "text"), target)

    encoded = encode(target_name, request, target)

    x = Expect(source, target_name, target, request)
    check(encoded, x)
    strings = encoded.strings()
    foreign = [r for r in x.reasoning if r.text and not x.native(r)]
    claude_resumed = target_name == "claude-sdk" and source == "claude-sdk"
    for r in foreign:
        if not claude_resumed:
            assert any(f"<thinking>{r.text}</thinking>" in s for s in strings), r.text[:40]


# --- a history that already crossed providers once ---------------------------------------------

CHAINS = [(a, b) for a in SOURCES for b in SOURCES if a != b]


@pytest.mark.parametrize(("first", "second"), CHAINS, ids=[f"{a}+{b}" for a, b in CHAINS])
def test_history_from_two_providers_keeps_each_parts_origin(first: str, second: str, realdata: Path) -> None:
    """An agent that moved from ``first`` to ``second`` and now moves again: every part keeps
    its own origin, so each target gets back exactly the signatures it produced itself."""
    a, b = produce(first, realdata), produce(second, realdata)
    chained = Produced(f"{first}+{second}", "chained", a.system, (*a.tools, *b.tools),
                       (*a.messages, *b.messages[1:]))  # b's opening user turn (and image) left out
    for target_name in TARGETS:
        target = make_target(target_name)
        request = preflight.check(request_for(chained), target)
        encoded = encode(target_name, request, target)
        check(encoded, Expect(chained.source, target_name, target, request))


# --- model switches inside one provider -------------------------------------------------------


@pytest.mark.parametrize(("source", "other"), [("gemini", "gemini-2.5"), ("bedrock", "bedrock-nova"),
                                               ("responses", "openai")])
def test_another_model_of_the_same_provider_gets_no_signature(source: str, other: str, realdata: Path) -> None:
    """Gemini and Bedrock validate signatures per model, so a model switch drops them too; so does
    OpenAI's encrypted reasoning (gpt-6.1-sol on Responses -> gpt-4.1 on Chat Completions)."""
    produced = produce(source, realdata)
    target = make_target(other)
    request = preflight.check(request_for(produced), target)

    encoded = encode(other, request, target)

    check(encoded, Expect(source, other, target, request))
    assert reasoning_fields(encoded.body) == []  # gemini-2.5 needs no placeholder either


# --- a target model without tools ------------------------------------------------------------

TOOL_SOURCES = [s for s in SOURCES if s != "claude-sdk"]
HTTP_TARGETS = [t for t in TARGETS if t != "claude-sdk"]
FLAT = [(s, t) for s in TOOL_SOURCES for t in HTTP_TARGETS]


@pytest.mark.parametrize("target_name", HTTP_TARGETS)
def test_tool_history_to_a_model_without_tools_is_refused_by_default(target_name: str, realdata: Path) -> None:
    produced = produce("anthropic", realdata)
    target = make_target(target_name, tools=False)
    with pytest.raises(CapabilityError):
        preflight.check(request_for(produced), target)


@pytest.mark.parametrize(("source", "target_name"), FLAT, ids=[f"{s}->{t}" for s, t in FLAT])
def test_tool_history_is_flattened_for_a_model_without_tools(source: str, target_name: str, realdata: Path) -> None:
    produced = produce(source, realdata)
    target = make_target(target_name, tools=False)
    original = request_for(produced)
    request = preflight.check(original, target, tools="flatten")

    encoded = encode(target_name, request, target)

    x = Expect(source, target_name, target, request)
    assert x.calls == [] and x.results == {} and request.tools == ()
    check(encoded, x)  # with no calls in the history, every tool structure must be absent
    strings = encoded.strings()
    for key in ("tool_calls", "tool_use", "tool_result", "functionCall", "functionResponse", "toolUse",
                "toolResult", "toolConfig", "tools"):
        assert key not in strings, f"{key} sent to a model without tools"
    calls = [p for m in original.messages for p in m.parts if isinstance(p, ToolCall)]
    for call in calls:
        assert any(f"[called tool {call.name} with " in s for s in strings)
        assert any(f"[result of tool {call.name}: " in s for s in strings)


# --- DeepSeek's thinking mode ------------------------------------------------------------------


@pytest.mark.parametrize("source", [s for s in TOOL_SOURCES if s != "deepseek"])
def test_deepseek_thinking_mode_gets_reasoning_content_on_foreign_tool_call_turns(source: str, realdata: Path) -> None:
    """The field must be there, and empty: foreign reasoning is never passed off as DeepSeek's.
    The recorded DeepSeek exchange (deepseek/..._deferred_capability_with_thinking) shows DeepSeek
    accepting ``"reasoning_content": ""`` on a tool-call turn it did not produce."""
    target = make_target("deepseek-thinking")  # deepseek-v4-pro: thinking on, no vision
    request = preflight.check(request_for(produce(source, realdata)), target, images="omit")

    encoded = encode("deepseek-thinking", request, target)

    assert encoded.body["thinking"] == {"type": "enabled"}
    check_common(encoded, Expect(source, "deepseek-thinking", target, request))
    turns = [m for m in encoded.body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert turns and all(m.get("reasoning_content") == "" for m in turns)


def test_matrix_covers_every_ordered_pair_of_families() -> None:
    families = {"anthropic", "openai", "responses", "gemini", "bedrock", "ollama", "claude-sdk"}
    assert "kimi" in SOURCES  # ids with dots and colons
    assert families <= set(SOURCES) and families <= set(TARGETS)
    assert {"mistral", "deepseek"} <= set(TARGETS)
    covered = {(s, t) for s, t in PAIRS}
    assert {(a, b) for a in families for b in families if a != b} <= covered


# --- a document in the conversation ----------------------------------------------------------------

#: the start of a real PDF file (header and a catalog object), enough to be sent as one
PDF_B64 = base64.b64encode(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n%%EOF\n").decode()
DOCUMENT = Document("application/pdf", data=PDF_B64, name="Q3_report.v2.pdf")
#: targets whose model reads documents, and the document as each one's wire form carries it
READS_DOCUMENTS = {
    "anthropic": {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                 "data": PDF_B64}, "title": "Q3_report.v2.pdf"},
    "claude-sdk": {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                  "data": PDF_B64}, "title": "Q3_report.v2.pdf"},
    "openai": {"type": "file", "file": {"filename": "Q3_report.v2.pdf",
                                        "file_data": f"data:application/pdf;base64,{PDF_B64}"}},
    "responses": {"type": "input_file", "filename": "Q3_report.v2.pdf",
                  "file_data": f"data:application/pdf;base64,{PDF_B64}"},
    "gemini": {"inlineData": {"mimeType": "application/pdf", "data": PDF_B64}},
    "bedrock": {"document": {"format": "pdf", "name": "Q3 report v2", "source": {"bytes": PDF_B64}}},
}


def with_document(produced: Produced) -> Produced:
    """The same history, with a PDF attached to the user's first turn (before the source answered),
    so the switch carries a document that another provider was given first."""
    first = next(i for i, m in enumerate(produced.messages) if m.role == "user")
    messages = list(produced.messages)
    messages[first] = Message("user", (*messages[first].parts, DOCUMENT))
    return Produced(produced.source, produced.origin, produced.system, produced.tools, tuple(messages))


def _contains(value: Any, wanted: dict[str, Any]) -> bool:
    if value == wanted:
        return True
    if isinstance(value, dict):
        return any(_contains(v, wanted) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains(v, wanted) for v in value)
    return False


@pytest.mark.parametrize(("source", "target_name"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
def test_a_document_is_re_encoded_for_the_target_or_refused_before_sending(
    source: str, target_name: str, realdata: Path
) -> None:
    produced = with_document(produce(source, realdata))
    target = make_target(target_name)
    if target_name not in READS_DOCUMENTS:
        assert not target.model.documents
        with pytest.raises(CapabilityError, match="document"):
            preflight.check(request_for(produced), target)
        return
    assert target.model.documents
    request = preflight.check(request_for(produced), target)
    assert [p for m in request.messages for p in m.parts if isinstance(p, Document)] == [DOCUMENT]  # survived storage

    encoded = encode(target_name, request, target)

    check(encoded, Expect(produced.source, target_name, target, request))
    if source == target_name == "claude-sdk":
        assert encoded.body["resume"]  # the resumed CLI session already holds the document
        assert not _contains(encoded.body, READS_DOCUMENTS[target_name])
    else:
        assert _contains(encoded.body, READS_DOCUMENTS[target_name]), encoded.body
