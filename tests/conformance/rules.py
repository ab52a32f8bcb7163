"""What each target's rules demand of an encoded request, checked against the neutral history
that was encoded (``Expect``). Every check names the rule it enforces in its message."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ironspire.messages import Image, Message, Reasoning, Text, ToolCall, ToolResult
from ironspire.protocols.base import ChatRequest, Target

from .targets import FAMILY, Encoded

ANTHROPIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
BEDROCK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MISTRAL_ID = re.compile(r"^[A-Za-z0-9]{9}$")
OPENAI_ID_MAX = 40
#: Google's documented placeholder for a replayed call whose real signature is unknown
SKIP_SIGNATURE = "skip_thought_signature_validator"
#: Gemini 3 and later reject replayed function calls without a thought signature
GEMINI_3 = re.compile(r"^(?:models/)?gemini-(?:[3-9]|\d\d)")

#: wire keys that carry reasoning or its proof in some protocol
REASONING_KEYS = frozenset({
    "thinking", "signature", "redacted_thinking", "thought", "thoughtSignature", "reasoning_content",
    "reasoningContent", "reasoningText", "redactedContent", "reasoning", "encrypted_content",
})
RESPONSES_ID_MAX = 64


def responses_item(value: str | None) -> dict[str, Any] | None:
    """The Responses reasoning item a Reasoning part carries as its opaque payload, if it is one."""
    try:
        item = json.loads(value or "")
    except json.JSONDecodeError:
        return None
    return item if isinstance(item, dict) and item.get("type") == "reasoning" else None


@dataclass(frozen=True)
class Expect:
    """Facts about the history the request was built from, in the order they were produced."""

    source: str
    target_name: str
    target: Target
    request: ChatRequest

    @property
    def family(self) -> str:
        return FAMILY[self.target_name]

    @property
    def history(self) -> list[Message]:
        return [m for m in self.request.messages if m.role != "system"]

    @property
    def calls(self) -> list[ToolCall]:
        return [p for m in self.history for p in m.parts if isinstance(p, ToolCall)]

    @property
    def results(self) -> dict[str, ToolResult]:
        return {p.call_id: p for m in self.history for p in m.parts if isinstance(p, ToolResult)}

    @property
    def reasoning(self) -> list[Reasoning]:
        return [p for m in self.history for p in m.parts if isinstance(p, Reasoning)]

    @property
    def system(self) -> str:
        assert self.request.system
        return self.request.system

    @property
    def last_user_text(self) -> str:
        return self.history[-1].text

    def native(self, part: Reasoning | ToolCall) -> bool:
        """Whether the target may receive this part's opaque value: same provider; for Gemini
        and Bedrock also the same model (both validate signatures per model)."""
        if part.provider != self.target.provider.id:
            return False
        if isinstance(part, Reasoning) and responses_item(part.signature) is not None:
            # encrypted reasoning is readable by the Responses API of the model that wrote it only
            return self.family == "responses" and part.model == self.target.model.id
        return self.family not in ("gemini", "bedrock", "responses") or part.model == self.target.model.id

    def signatures(self) -> list[tuple[str, Reasoning | ToolCall]]:
        out: list[tuple[str, Reasoning | ToolCall]] = []
        for m in self.history:
            for p in m.parts:
                if isinstance(p, Reasoning) and (item := responses_item(p.signature)) is not None:
                    out.extend((v, p) for v in (item.get("encrypted_content"),) if v)
                elif isinstance(p, Reasoning):
                    out.extend((v, p) for v in (p.signature, p.redacted) if v)
                elif isinstance(p, ToolCall) and p.signature:
                    out.append((p.signature, p))
        return out


def _walk(value: Any, path: str = "$") -> list[tuple[str, str, Any]]:
    """(path, key, value) for every key in a JSON structure."""
    out: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((path, k, v))
            out.extend(_walk(v, f"{path}.{k}"))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_walk(v, f"{path}[{i}]"))
    return out


def reasoning_fields(body: Any) -> list[tuple[str, str, Any]]:
    """Reasoning carried inside the conversation; the request-level switch (``thinking`` at the
    top of an Anthropic or DeepSeek body) is configuration, not replayed reasoning."""
    fields = [(p, k, v) for p, k, v in _walk(body) if k in REASONING_KEYS and p != "$"]
    fields += [(p, "type", v) for p, k, v in _walk(body)
               if k == "type" and v in ("thinking", "redacted_thinking", "reasoning")]
    return fields


# --- checks every target gets ------------------------------------------------------------------


def check_common(enc: Encoded, x: Expect) -> None:
    strings = enc.strings()
    # Signatures: present exactly where the target is their producer, nowhere else.
    for value, part in x.signatures():
        present = any(value in s for s in strings)
        expected = x.native(part) and x.family != "claude-sdk"
        if x.family == "claude-sdk" or not expected:
            assert not present, f"{x.source}->{x.target_name}: foreign signature {value[:16]}... leaked"
        else:
            assert present, f"{x.source}->{x.target_name}: own signature {value[:16]}... was dropped"
    # Reasoning text: replayed natively to its producer; otherwise dropped (the default policy).
    if x.request.foreign_reasoning == "drop":
        for r in x.reasoning:
            if not r.text:
                continue
            item = responses_item(r.signature)
            pieces = [t["text"] for t in (item or {}).get("summary") or ()] or [r.text]  # one string per part
            present = all(any(p in s for s in strings) for p in pieces)
            if not x.native(r) or x.family == "claude-sdk":
                assert not present, f"{x.source}->{x.target_name}: foreign reasoning text leaked: {r.text[:40]!r}"
            elif x.family != "openai" or x.target.provider.id == "deepseek":
                assert present, f"{x.source}->{x.target_name}: own reasoning was not replayed: {r.text[:40]!r}"
    # No reasoning field at all unless it is the target's own (Gemini 3's documented placeholder aside).
    native_any = any(x.native(r) for r in x.reasoning) or any(x.native(c) and c.signature for c in x.calls)
    if not native_any or x.family == "claude-sdk":
        for path, key, value in reasoning_fields(enc.body):
            if key == "thoughtSignature" and value == SKIP_SIGNATURE:
                continue
            if key == "reasoning_content" and value == "" and x.target.provider.id == "deepseek":
                continue  # DeepSeek's thinking mode wants the field on every turn; empty carries nothing
            raise AssertionError(f"{x.source}->{x.target_name}: reasoning field {key} at {path} sent to a "
                                 "provider that did not produce it")
    # The system prompt is sent once, in the target's place (checked per target).
    assert sum(s.count(x.system) for s in strings) == 1, f"{x.target_name}: system prompt not sent exactly once"


# --- per protocol ---------------------------------------------------------------------------------


def _text_blocks_non_empty(blocks: list[dict[str, Any]], where: str) -> None:
    for b in blocks:
        if b.get("type") == "text":
            assert b["text"].strip(), f"{where}: blank text block"


def check_anthropic(enc: Encoded, x: Expect) -> None:
    body = enc.body
    system = body["system"]
    assert (system if isinstance(system, str) else system[0]["text"]) == x.system
    messages = body["messages"]
    roles = [m["role"] for m in messages]
    assert set(roles) <= {"user", "assistant"}, roles
    assert roles[0] == "user" and roles[-1] == "user", f"first/last turn must be user (no prefill): {roles}"
    assert all(a != b for a, b in pairwise(roles)), f"roles must alternate: {roles}"
    seen: list[str] = []
    for i, m in enumerate(messages):
        _text_blocks_non_empty(m["content"], f"anthropic message {i}")
        uses = [b for b in m["content"] if b["type"] == "tool_use"]
        if m["role"] == "user":
            assert not uses and not [b for b in m["content"] if b["type"] in ("thinking", "redacted_thinking")]
            continue
        assert not [b for b in m["content"] if b["type"] == "tool_result"], "tool_result in an assistant turn"
        if not uses:
            continue
        ids = [b["id"] for b in uses]
        for tool_id in ids:
            assert ANTHROPIC_ID.match(tool_id), f"tool_use id {tool_id!r} invalid for Anthropic"
        nxt = messages[i + 1]["content"]
        results = [b for b in nxt if b["type"] == "tool_result"]
        assert [b["type"] for b in nxt[: len(results)]] == ["tool_result"] * len(results), \
            "tool_result blocks must open the next user turn"
        assert sorted(b["tool_use_id"] for b in results) == sorted(ids), "tool_use without its tool_result"
        seen += ids
        if any(b["type"] in ("thinking", "redacted_thinking") for b in m["content"]):
            assert m["content"][0]["type"] in ("thinking", "redacted_thinking"), "thinking must precede tool_use"
    assert len(seen) == len(x.calls)
    tool_results = [b for m in messages for b in m["content"] if b["type"] == "tool_result"]
    _pairs_by_order(x, seen, [b["tool_use_id"] for b in tool_results])
    results_text = {b["tool_use_id"]: b["content"] for b in tool_results}
    for wire_id, call in zip(seen, x.calls, strict=True):
        assert results_text[wire_id] == x.results[call.id].text()
    images = [b for m in messages if m["role"] == "user" for b in m["content"] if b["type"] == "image"]
    assert images == [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _png(x)}}]
    own = [b for m in messages for b in m["content"] if b["type"] == "thinking"]
    assert [b["signature"] for b in own] == [r.signature for r in x.reasoning if x.native(r) and r.signature]
    assert messages[-1]["content"][-1] == {"type": "text", "text": x.last_user_text}


def check_openai(enc: Encoded, x: Expect) -> None:
    mistral = x.target.provider.id == "mistral"
    deepseek = x.target.provider.id == "deepseek"
    messages = enc.body["messages"]
    roles = [m["role"] for m in messages]
    assert set(roles) <= {"system", "developer", "user", "assistant", "tool"}, roles
    assert roles[0] in ("system", "developer") and messages[0]["content"] == x.system
    assert "system" not in roles[1:] and "developer" not in roles[1:], "system prompt must come first, once"
    assert roles[-1] == "user" and not messages[-1].get("prefix"), f"the request must end on the user: {roles}"
    assert messages[-1]["content"] == x.last_user_text
    seen: list[str] = []
    answered: list[str] = []
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            assert roles[i - 1] in ("assistant", "tool"), "a tool message must follow its assistant turn"
            answered.append(m["tool_call_id"])
            if mistral and i + 1 < len(messages):
                assert roles[i + 1] in ("assistant", "tool"), f"Mistral: nothing but assistant/tool after tool: {roles}"
            continue
        if m["role"] != "assistant":
            continue
        assert m.get("content") or m.get("tool_calls"), "assistant turn with neither content nor tool calls"
        calls = m.get("tool_calls") or []
        ids = [c["id"] for c in calls]
        for tool_id in ids:
            if mistral:
                assert MISTRAL_ID.match(tool_id), f"id {tool_id!r} is not 9 alphanumerics (Mistral)"
            else:
                assert 0 < len(tool_id) <= OPENAI_ID_MAX, f"id {tool_id!r} longer than 40 (OpenAI)"
        for c in calls:
            assert c["type"] == "function" and isinstance(c["function"]["arguments"], str)
            json.loads(c["function"]["arguments"])
        following = [t["tool_call_id"] for t in messages[i + 1: i + 1 + len(calls)] if t["role"] == "tool"]
        assert following == ids, "each tool call needs exactly one tool message right after its turn"
        seen += ids
        if "reasoning_content" in m:
            assert deepseek, f"reasoning_content sent to {x.target.provider.id}"
    assert len(seen) == len(x.calls)
    _pairs_by_order(x, seen, answered)
    contents = {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}
    for wire_id, call in zip(seen, x.calls, strict=True):
        assert contents[wire_id] == x.results[call.id].text()
    url = f"data:image/png;base64,{_png(x)}"
    images = [p for m in messages if m["role"] == "user" and isinstance(m["content"], list)
              for p in m["content"] if p["type"] == "image_url"]
    assert images == [{"type": "image_url", "image_url": url if mistral else {"url": url}}]
    if deepseek:
        own = [m["reasoning_content"] for m in messages if m["role"] == "assistant" and m.get("reasoning_content")]
        expected = [r.text for r in x.reasoning if x.native(r) and r.text]
        assert own == expected, "DeepSeek's own reasoning_content must go back on its assistant turns"


def check_responses(enc: Encoded, x: Expect) -> None:
    body = enc.body
    items = body["input"]
    assert body["instructions"] == x.system and body["store"] is False
    roles = [i["role"] for i in items if "role" in i]
    assert set(roles) <= {"user", "assistant"}, f"the system prompt belongs in instructions: {roles}"
    assert items[-1] == {"role": "user", "content": x.last_user_text}, "the request must end on the user"
    calls = [i for i in items if i.get("type") == "function_call"]
    ids = [c["call_id"] for c in calls]
    for call_id in ids:
        assert 0 < len(call_id) <= RESPONSES_ID_MAX, f"call_id {call_id!r} longer than 64 (Responses)"
    for c in calls:
        json.loads(c["arguments"])
        assert "id" not in c, "a function_call's item id points at stored state (store is false)"
    results = [i for i in items if i.get("type") == "function_call_output"]
    for r in results:
        at = items.index(r)
        assert r["call_id"] in [c["call_id"] for c in calls if items.index(c) < at], "result before its call"
    assert len(ids) == len(x.calls)
    _pairs_by_order(x, ids, [r["call_id"] for r in results])
    outputs = {r["call_id"]: r["output"] for r in results}
    for wire_id, call in zip(ids, x.calls, strict=True):
        assert outputs[wire_id] == x.results[call.id].text()
    url = f"data:image/png;base64,{_png(x)}"
    images = [p for i in items if i.get("role") == "user" and isinstance(i["content"], list)
              for p in i["content"] if p["type"] == "input_image"]
    assert images == [{"type": "input_image", "image_url": url}]
    sent = [i for i in items if i.get("type") == "reasoning"]
    own = [responses_item(r.signature) for r in x.reasoning if x.native(r)]
    assert [i.get("encrypted_content") for i in sent] == [o.get("encrypted_content") for o in own if o], \
        "own encrypted reasoning must go back, and nothing else"
    for i in sent:
        after = items[items.index(i) + 1]
        assert after.get("type") in ("function_call", "reasoning") or after.get("role") == "assistant", \
            "a reasoning item stays right before what it led to"


def check_gemini(enc: Encoded, x: Expect) -> None:
    body = enc.body
    assert body["systemInstruction"] == {"parts": [{"text": x.system}]}
    contents = body["contents"]
    roles = [c["role"] for c in contents]
    assert set(roles) <= {"user", "model"}, roles
    assert roles[0] == "user" and roles[-1] == "user", roles
    seen: list[tuple[str, str]] = []
    answered: list[tuple[str, str]] = []
    gemini3 = GEMINI_3.match(x.target.model.id) is not None
    for i, c in enumerate(contents):
        assert c["parts"], f"content {i} has no parts"
        for p in c["parts"]:
            assert p.get("text") != "" or "thoughtSignature" in p, f"content {i}: empty text part"
        calls = [p for p in c["parts"] if "functionCall" in p]
        responses = [p["functionResponse"] for p in c["parts"] if "functionResponse" in p]
        if c["role"] == "user":
            assert not calls
            answered += [(r["id"], r["name"]) for r in responses]
            for r in responses:
                assert isinstance(r["response"], dict), "functionResponse.response must be an object"
            continue
        assert not responses
        if not calls:
            continue
        pairs = [(p["functionCall"]["id"], p["functionCall"]["name"]) for p in calls]
        nxt = [(r["functionResponse"]["id"], r["functionResponse"]["name"])
               for r in contents[i + 1]["parts"] if "functionResponse" in r]
        assert contents[i + 1]["role"] == "user" and sorted(nxt) == sorted(pairs), \
            "the function responses (id and name) must directly follow their call turn, one per call"
        seen += pairs
        signed = [p.get("thoughtSignature") for p in calls]
        originals = [_call_by_wire(x, wire_id) for wire_id, _ in pairs]
        for sig, call in zip(signed, originals, strict=True):
            if x.native(call) and call.signature:
                assert sig == call.signature, "Gemini's own thoughtSignature must go back on its call"
        if not any(x.native(c) and c.signature for c in originals):
            expected = [SKIP_SIGNATURE] + [None] * (len(calls) - 1) if gemini3 else [None] * len(calls)
            assert signed == expected, f"foreign calls on {x.target.model.id}: signatures {signed} != {expected}"
    assert len(seen) == len(x.calls) and sorted(answered) == sorted(seen)
    for wire_id, name in seen:
        assert _call_by_wire(x, wire_id).name == name, "functionCall must keep the tool's name"
    images = [p for c in contents if c["role"] == "user" for p in c["parts"]
              if "inlineData" in p and p["inlineData"]["mimeType"].startswith("image/")]
    assert images == [{"inlineData": {"mimeType": "image/png", "data": _png(x)}}]
    own = [p for c in contents for p in c["parts"] if p.get("thought")]
    assert [p["text"] for p in own] == [r.text for r in x.reasoning if x.native(r) and r.text]
    assert contents[-1]["parts"][-1] == {"text": x.last_user_text}


def check_bedrock(enc: Encoded, x: Expect) -> None:
    body = enc.body
    assert body["system"] == [{"text": x.system}]
    messages = body["messages"]
    roles = [m["role"] for m in messages]
    assert roles[0] == "user" and roles[-1] == "user", roles
    assert all(a != b for a, b in pairwise(roles)), f"Converse needs strict alternation: {roles}"
    seen: list[str] = []
    answered: list[str] = []
    for i, m in enumerate(messages):
        for b in m["content"]:
            if "text" in b:
                assert b["text"].strip(), "Converse rejects blank text"
            if "image" in b or "toolResult" in b:
                assert m["role"] == "user"
        uses = [b["toolUse"] for b in m["content"] if "toolUse" in b]
        answered += [b["toolResult"]["toolUseId"] for b in m["content"] if "toolResult" in b]
        if not uses:
            continue
        assert m["role"] == "assistant"
        ids = [u["toolUseId"] for u in uses]
        for tool_id in ids:
            assert BEDROCK_ID.match(tool_id), f"toolUseId {tool_id!r} invalid for Bedrock"
        nxt = [b["toolResult"]["toolUseId"] for b in messages[i + 1]["content"] if "toolResult" in b]
        assert sorted(nxt) == sorted(ids), "toolUse without its toolResult in the next user turn"
        seen += ids
    assert len(seen) == len(x.calls)
    _pairs_by_order(x, seen, answered)
    if seen:
        declared = {t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]}
        assert {c.name for c in x.calls} <= declared, "Converse needs toolConfig naming the tools in history"
    else:
        assert "toolConfig" not in body or x.request.tools
    images = [b for m in messages for b in m["content"] if "image" in b]
    assert images == [{"image": {"format": "png", "source": {"bytes": _png(x)}}}]
    own = [b["reasoningContent"]["reasoningText"] for m in messages for b in m["content"] if "reasoningContent" in b]
    assert [(r["text"], r["signature"]) for r in own] == [
        (r.text, r.signature) for r in x.reasoning if x.native(r) and r.signature
    ]
    assert messages[-1]["content"][-1] == {"text": x.last_user_text}


def check_ollama(enc: Encoded, x: Expect) -> None:
    messages = enc.body["messages"]
    assert messages[0] == {"role": "system", "content": x.system}
    roles = [m["role"] for m in messages]
    assert set(roles[1:]) <= {"user", "assistant", "tool"}, roles
    assert roles[-1] == "user" and messages[-1]["content"] == x.last_user_text, roles
    seen: list[str] = []
    answered: list[str] = []
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            answered.append(m["tool_call_id"])
            continue
        calls = m.get("tool_calls") or []
        if not calls:
            continue
        assert m["role"] == "assistant"
        for c in calls:
            assert isinstance(c["function"]["arguments"], dict), "Ollama takes tool arguments as an object"
        after = messages[i + 1: i + 1 + len(calls)]
        assert [(t["role"], t["tool_name"], t["tool_call_id"]) for t in after] == [
            ("tool", c["function"]["name"], c["id"]) for c in calls
        ], "each call's result must follow it as a tool message naming the tool"
        seen += [c["id"] for c in calls]
    assert len(seen) == len(x.calls)
    _pairs_by_order(x, seen, answered)
    images = [img for m in messages for img in m.get("images", [])]
    assert images == [_png(x)] and not images[0].startswith("data:")
    own = [m["thinking"] for m in messages if "thinking" in m]
    expected = [r.text for r in x.reasoning if x.native(r) and r.text]
    assert own == expected


def check_claude_sdk(enc: Encoded, x: Expect) -> None:
    """The CLI keeps its own session: it is resumed after the last turn it produced, and only
    what it has not seen goes into the prompt, as a transcript before the new user turn."""
    content, argv, resume = enc.body["content"], enc.body["argv"], enc.body["resume"]
    assert argv[argv.index("--system-prompt") + 1] == x.system
    assert argv[argv.index("--tools") + 1] == "", "plain chat offers the CLI no tools"
    assert argv[argv.index("--model") + 1] == x.target.model.id
    assert content[-1] == {"type": "text", "text": x.last_user_text}
    history = x.history
    own = [i for i, m in enumerate(history) if m.role == "assistant" and m.provider == x.target.provider.id]
    start = own[-1] + 1 if own else 0
    if own:
        assert resume == history[own[-1]].meta["session_id"] and f"--resume={resume}" in argv
    else:
        assert resume is None and not any(a.startswith("--resume") for a in argv)
    unseen = history[start:]
    if all(m.role != "assistant" for m in unseen):
        assert content == [{"type": "text", "text": x.last_user_text}], "a resumed session gets only the new turn"
        return
    transcript = content[0]["text"]
    assert content[0]["type"] == "text" and "<transcript>" in transcript
    for m in unseen[:-1]:
        for p in m.parts:
            if isinstance(p, Text) and p.text.strip():
                assert p.text in transcript
            elif isinstance(p, ToolCall):
                args = json.dumps(dict(p.arguments), ensure_ascii=False)
                assert f"[called tool {p.name} with {args}]" in transcript
            elif isinstance(p, ToolResult):
                assert f'<tool_result name="{p.tool_name}">\n{p.text()}\n</tool_result>' in transcript
    for m in history[:start]:  # already in the resumed session: not sent twice
        for p in m.parts:
            if isinstance(p, Text) and len(p.text) > 20:
                assert p.text not in transcript, f"resumed session got an old turn again: {p.text[:40]!r}"
    if any(isinstance(p, Image) for m in unseen for p in m.parts):
        assert "[image]" in transcript and _png(x) not in transcript  # documented: history images become [image]


CHECKS = {
    "anthropic": check_anthropic, "openai": check_openai, "responses": check_responses, "gemini": check_gemini,
    "bedrock": check_bedrock, "ollama": check_ollama, "claude-sdk": check_claude_sdk,
}


def check(enc: Encoded, x: Expect) -> None:
    check_common(enc, x)
    CHECKS[x.family](enc, x)


# --- helpers --------------------------------------------------------------------------------------


def _png(x: Expect) -> str:
    images = [p for m in x.history for p in m.parts if isinstance(p, Image)]
    assert len(images) == 1 and images[0].data
    return images[0].data


def _pairs_by_order(x: Expect, wire_calls: list[str], wire_results: list[str]) -> None:
    """The n-th call and its result carry one id on the wire, distinct from every other call's."""
    assert len(set(wire_calls)) == len(wire_calls), f"two calls share a wire id: {wire_calls}"
    order = {c.id: i for i, c in enumerate(x.calls)}
    expected = [wire_calls[order[r]] for r in x.results]
    assert sorted(wire_results) == sorted(expected), f"results {wire_results} do not pair with calls {wire_calls}"


def _call_by_wire(x: Expect, wire_id: str) -> ToolCall:
    """Gemini sends the original id (it accepts any string)."""
    return next(c for c in x.calls if c.id == wire_id)
