"""Translation rules every adapter needs when history crosses providers.

They live in one place so that every protocol makes the same decision for the same history:
a tool-call id is rewritten the same way on every request (call and result keep pairing up),
and foreign reasoning is treated by one documented policy.

Foreign-reasoning policy: reasoning carries signatures only its producer can verify, so a
Reasoning part is replayed natively only to the provider that produced it. For any other
target it is dropped (``foreign_reasoning="drop"``, the default) or, with ``"text"``, its
visible text is given to the target as ordinary assistant text inside ``<thinking>`` tags.
Redacted reasoning carries no readable text and is always dropped for foreign targets.
"""

from __future__ import annotations

import base64
import hashlib
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from ironspire.messages import CACHE_HERE, Document, Image, Message, Part, Reasoning, Text, ToolCall, ToolResult
from ironspire.protocols.base import CacheTTL, ChatRequest, PromptCache, Target

_ALNUM = string.ascii_letters + string.digits


def _digest_id(original: str, length: int, alphabet: str = _ALNUM) -> str:
    n = int.from_bytes(hashlib.sha256(original.encode()).digest(), "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


_ANTHROPIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BEDROCK_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MISTRAL_ID = re.compile(r"^[A-Za-z0-9]{9}$")


def tool_id(original: str, style: str) -> str:
    """The id to send to a provider for a call first produced as ``original``.

    Ids that already fit the target are kept; others are replaced by a digest, so the same
    original always maps to the same id and a call still pairs with its result.
    styles: "anthropic" ([A-Za-z0-9_-], <=64), "bedrock" (adds . and :), "mistral" (exactly 9
    alphanumerics), "openai" (<=40 chars), "responses" (the Responses API's ``call_id``: <=64 chars),
    "any" (unchanged).
    """
    if style == "mistral":
        return original if _MISTRAL_ID.match(original) else _digest_id(original, 9)
    if style == "anthropic":
        return original if _ANTHROPIC_ID.match(original) else "toolu_" + _digest_id(original, 24)
    if style == "bedrock":
        return original if _BEDROCK_ID.match(original) else "tooluse_" + _digest_id(original, 22)
    if style == "openai":
        return original if 0 < len(original) <= 40 else "call_" + _digest_id(original, 24)
    if style == "responses":
        return original if 0 < len(original) <= 64 else "call_" + _digest_id(original, 24)
    return original


def new_tool_id(seed: str) -> str:
    """A synthetic id for a call the provider sent without one (Gemini, Ollama): 9 alphanumerics
    are valid for every provider, so the id never needs rewriting later."""
    return _digest_id(seed, 9)


def is_own(part: Reasoning | ToolCall, target: Target) -> bool:
    """Whether an opaque value on this part was produced by the target provider."""
    return part.provider == target.provider.id


def reasoning_as_text(part: Reasoning) -> Text | None:
    return Text(f"<thinking>{part.text}</thinking>") if part.text else None


def foreign_reasoning(part: Reasoning, request: ChatRequest) -> Iterator[Part]:
    """What a foreign Reasoning part becomes, by the request's policy."""
    if request.foreign_reasoning == "text":
        text = reasoning_as_text(part)
        if text is not None:
            yield text


def system_text(request: ChatRequest) -> str | None:
    """The agent's system prompt and every system message, joined, for protocols with one slot."""
    chunks = [request.system] if request.system else []
    for m in request.messages:
        if m.role == "system":
            chunks.extend(p.text for p in m.parts if isinstance(p, Text))
    joined = "\n\n".join(c for c in chunks if c)
    return joined or None


INTERRUPTED = "[no result: the tool call was interrupted before it finished]"


def conversation(request: ChatRequest, *, keep_system: bool = False) -> list[Message]:
    """The history without empty turns (and without system messages unless ``keep_system``),
    with every tool call answered exactly once, right after the turn that made it.

    Every provider rejects a tool call whose result never follows (Anthropic and Bedrock want
    it in the very next user turn, Gemini wants as many responses as calls, OpenAI wants the
    tool messages directly after the call). That happens when a turn was cut off after the
    model asked for a tool, or the user wrote instead of running it; such calls get an error
    result saying so, inserted where the result was due. A result that arrives after that (or
    for a call that is not in the history) would be rejected as well: it is kept as user text.
    """
    out: list[Message] = []
    pending: dict[str, str] = {}
    for m in request.messages:
        if not m.parts or (m.role == "system" and not keep_system):
            continue
        parts: list[Part] = []
        for p in m.parts:
            if isinstance(p, ToolResult) and pending.pop(p.call_id, None) is None:
                parts.append(Text(f"[late result of tool {p.tool_name}: {tool_results_text(p)}]"))
            else:
                parts.append(p)
        if pending and not all(isinstance(p, ToolResult) for p in parts):
            out.append(_interrupted(pending))
            pending = {}
        if parts != list(m.parts):
            role = m.role if any(isinstance(p, ToolResult) for p in parts) or m.role != "tool" else "user"
            m = replace(m, role=role, parts=tuple(parts))
        out.append(m)
        if m.role == "assistant":
            pending = {p.id: p.name for p in m.parts if isinstance(p, ToolCall)}
    return out


def _interrupted(pending: dict[str, str]) -> Message:
    return Message("tool", tuple(ToolResult(cid, name, (Text(INTERRUPTED),), True) for cid, name in pending.items()))


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) from a ``data:`` URL, or None for an ordinary URL."""
    if not url.startswith("data:"):
        return None
    header, _, data = url.partition(",")
    media = header[5:].split(";")[0] or "application/octet-stream"
    if ";base64" not in header:
        data = base64.b64encode(data.encode()).decode()
    return media, data


def image_data_url(image: Image | Document) -> str:
    if image.url is not None:
        return image.url
    return f"data:{image.media_type};base64,{image.data}"


def image_inline(image: Image | Document) -> tuple[str, str]:
    """(media type, base64) for protocols that only take inline bytes (images or documents).

    Remote URLs are not fetched behind the user's back: the error says what to do instead.
    """
    if image.data is not None:
        return image.media_type, image.data
    assert image.url is not None
    inline = split_data_url(image.url)
    if inline is None:
        from ironspire.errors import BadRequest

        what = "documents" if isinstance(image, Document) else "images"
        raise BadRequest(
            "ironspire", f"this provider accepts only inline {what}, not URLs",
            hint=f"Attach the file itself (base64) instead of a URL ({image.url[:80]}).",
        )
    return inline


#: file extensions for document media types, for providers that want a file name or format
DOCUMENT_EXTENSIONS = {
    "application/pdf": "pdf", "text/plain": "txt", "text/markdown": "md", "text/html": "html", "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}


def document_filename(document: Document, index: int = 1) -> str:
    """The document's own name, or ``document-N.<ext>`` when it came without one."""
    if document.name:
        return document.name
    ext = DOCUMENT_EXTENSIONS.get(document.media_type.lower(), "bin")
    return f"document-{index}.{ext}"


def document_text(document: Document) -> str | None:
    """The text of an inline ``text/*`` document, for protocols that take text sources."""
    if not document.media_type.lower().startswith("text/"):
        return None
    _, data = image_inline(document)
    try:
        return base64.b64decode(data).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def tool_results_text(result: ToolResult) -> str:
    text = result.text()
    images = sum(1 for p in result.content if isinstance(p, Image))
    if images:
        text += f"\n[{images} image(s) omitted]" if text else f"[{images} image(s)]"
    return text


# --- prompt caching --------------------------------------------------------------------------

_TTLS: tuple[CacheTTL, ...] = ("5m", "1h", "24h")
_OFF = ("off", "false", "no", "0", "")


def parse_cache(value: Any) -> PromptCache | None:
    """A cache request from a setting or option: "5m"/"1h"/"24h" (or a dict with ``ttl``), any
    other true value for the provider's default lifetime, "off"/False for none."""
    if isinstance(value, PromptCache):
        return value
    if not value or (isinstance(value, str) and value.strip().lower() in _OFF):
        return None
    ttl = value.get("ttl") if isinstance(value, Mapping) else value
    key = value.get("key") if isinstance(value, Mapping) else None
    return PromptCache(ttl if ttl in _TTLS else "default", str(key) if key else None)


def prompt_cache(request: ChatRequest, target: Target) -> PromptCache | None:
    """Whether (and how) this request asks for caching.

    ``options["cache"]`` decides for one request (False turns it off); else the provider setting
    ``prompt_cache`` (``ironspire providers set claude-api prompt_cache 5m``); else the neutral
    ``request.cache`` the agent fills from the workspace setting ``prompt_cache``.
    """
    raw = request.options.get("cache")
    if raw is None:
        raw = target.settings.get("prompt_cache")
    if raw is None:
        return request.cache
    cache = parse_cache(raw)
    if cache is not None and cache.key is None and request.cache is not None:
        cache = PromptCache(cache.ttl, request.cache.key)
    return cache


def capped_ttl(cache: PromptCache, longest: str = "1h") -> str | None:
    """The TTL for providers that know only 5m and 1h: 24h asks for their longest."""
    if cache.ttl == "default":
        return None
    return longest if cache.ttl == "24h" else cache.ttl


def is_cache_mark(message: Message) -> bool:
    """Whether the user marked this message as the end of a prefix to cache (``cache_here``)."""
    return bool(message.meta.get(CACHE_HERE))
