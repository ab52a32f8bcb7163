"""Checks run before anything is sent, so a request the target cannot take fails here, clearly,
instead of as a provider's 400 after a network round trip (and a billed prompt).

Degradation policies (workspace settings; the default for both is "error"):

- ``degrade_images = "omit"``: for a model without vision, every image in the history (and in
  tool results) is replaced by the text ``[image omitted]``; the stored history keeps the image,
  so switching back to a vision model sends it again.
- documents have no degradation: a model that cannot read files is refused with CapabilityError
  (dropping a document the user attached would answer a different question).
- ``degrade_tools = "flatten"``: for a model without tools, tool calls become assistant text
  ``[called tool NAME with {json}]``, tool results become user text ``[result of tool NAME: ...]``,
  adjacent messages of the same role are merged (roles must still alternate) and the request's
  tool definitions are dropped, since the model cannot call them.

The context check is an estimate (about four characters per token, a fixed cost per image)
made after degradation; it catches the clear cases before any money is spent, and the
provider's own "context length exceeded" reply is still mapped to the same error.

It is only made against a window somebody stated (``ModelSpec.context_known``: the data file,
discovery or the user's configuration). A model we know nothing about carries a placeholder
window, and refusing a long history on a placeholder would block conversations the provider
accepts (a 128K Groq model is not an 8K model because its listing was unavailable); the
provider's own overflow reply covers those. Ollama is the exception: it truncates an
over-long history silently instead of refusing it, so there the placeholder is still enforced.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Literal

from ironspire.errors import CapabilityError, ContextWindowExceeded
from ironspire.messages import Document, Image, Message, Part, Text, ToolCall, ToolResult
from ironspire.protocols.base import ChatRequest, Target

ImagePolicy = Literal["error", "omit"]
ToolPolicy = Literal["error", "flatten"]

IMAGE_TOKENS = 1_600
IMAGE_OMITTED = "[image omitted]"


def estimate_tokens(request: ChatRequest) -> int:
    chars = len(request.system or "")
    images = 0
    for message in request.messages:
        chars += 8  # role and framing
        for part in message.parts:
            if isinstance(part, Text):
                chars += len(part.text)
            elif isinstance(part, Image):
                images += 1
            elif isinstance(part, Document):
                # a page of PDF or text is a few thousand bytes and tokens alike; a URL is unknown
                chars += len(part.data) * 3 // 4 if part.data is not None else IMAGE_TOKENS * 4
            elif isinstance(part, ToolCall):
                chars += len(part.name) + len(json.dumps(part.arguments, ensure_ascii=False))
            elif isinstance(part, ToolResult):
                chars += len(part.tool_name)
                for inner in part.content:
                    if isinstance(inner, Text):
                        chars += len(inner.text)
                    else:
                        images += 1
            else:
                chars += len(part.text)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    return math.ceil(chars / 4) + images * IMAGE_TOKENS


def _has_images(messages: tuple[Message, ...]) -> int:
    count = 0
    for m in messages:
        for p in m.parts:
            if isinstance(p, Image):
                count += 1
            elif isinstance(p, ToolResult):
                count += sum(1 for c in p.content if isinstance(c, Image))
    return count


def _documents(messages: tuple[Message, ...]) -> int:
    return sum(1 for m in messages for p in m.parts if isinstance(p, Document))


def _has_tool_history(messages: tuple[Message, ...]) -> bool:
    return any(isinstance(p, ToolCall | ToolResult) for m in messages for p in m.parts)


def omit_images(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    def part(p: Part) -> Part:
        if isinstance(p, Image):
            return Text(IMAGE_OMITTED)
        if isinstance(p, ToolResult) and any(isinstance(c, Image) for c in p.content):
            return replace(p, content=tuple(Text(IMAGE_OMITTED) if isinstance(c, Image) else c for c in p.content))
        return p

    return tuple(replace(m, parts=tuple(part(p) for p in m.parts)) for m in messages)


def flatten_tools(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    out: list[Message] = []
    for m in messages:
        parts: list[Part] = []
        role = m.role
        for p in m.parts:
            if isinstance(p, ToolCall):
                args = json.dumps(dict(p.arguments), ensure_ascii=False, sort_keys=True)
                parts.append(Text(f"[called tool {p.name} with {args}]"))
            elif isinstance(p, ToolResult):
                label = "error from" if p.is_error else "result of"
                body = "".join(c.text if isinstance(c, Text) else IMAGE_OMITTED for c in p.content)
                parts.append(Text(f"[{label} tool {p.tool_name}: {body}]"))
            else:
                parts.append(p)
        if role == "tool":
            role = "user"
        if out and out[-1].role == role and role in ("user", "assistant"):
            prev = out[-1]
            out[-1] = replace(prev, parts=(*prev.parts, *parts))
        else:
            out.append(replace(m, role=role, parts=tuple(parts)))
    return tuple(out)


def check(
    request: ChatRequest, target: Target, *, images: ImagePolicy = "error", tools: ToolPolicy = "error"
) -> ChatRequest:
    """The request as it may be sent to ``target``, degraded by policy, or a clear error."""
    pid, model = target.provider.id, target.model
    messages = request.messages
    if not model.vision:
        count = _has_images(messages)
        if count:
            if images == "error":
                raise CapabilityError(pid, model.id, "vision", f"the conversation holds {count} image(s)")
            messages = omit_images(messages)
    if not model.documents:
        documents = _documents(messages)
        if documents:
            raise CapabilityError(
                pid, model.id, "documents",
                f"the conversation holds {documents} document(s) (PDF or other files)",
            )
    wants_tools = bool(request.tools) or request.force_tool is not None
    if not model.tools and (wants_tools or _has_tool_history(messages)):
        if tools == "error":
            what = "tool definitions were given" if wants_tools else "the conversation holds tool calls"
            raise CapabilityError(pid, model.id, "tools", what)
        messages = flatten_tools(messages)
        request = replace(request, tools=(), tool_choice=None, force_tool=None)
    if messages is not request.messages:
        request = replace(request, messages=messages)
    # A protocol may own a stricter check (Ollama: num_ctx, the server's own earlier counts);
    # running that same check here refuses before anything is recorded, and the two cannot
    # disagree about the same request.
    from ironspire.protocols import backend_for

    if backend_for(target.provider.protocol).context_check(request, target):
        return request
    if not model.context_known:
        return request
    used = estimate_tokens(request)
    if used > model.context_window:
        raise ContextWindowExceeded(
            pid,
            f"the conversation is about {used:,} tokens but {model.id} holds {model.context_window:,}",
            used=used, limit=model.context_window, model=model.id,
        )
    return request

