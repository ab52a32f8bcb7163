"""Reasoning that a model writes into its answer text as ``<think>...</think>`` (DeepSeek-R1 style).

Servers that do not separate R1-style reasoning (Together, Fireworks, Groq with ``raw`` format,
Ollama builds or models without native thinking, llama.cpp and other custom endpoints) pass it
on inside ``content``. Left there it would be shown as the answer and replayed to other providers
as answer text; split out, it becomes a ``Reasoning`` part like any other (no signature, scoped to
the provider and model that wrote it by the Accumulator).

The rule is deliberately narrow, so ordinary prose can never be mistaken for reasoning: a
``<think>`` tag counts only as the first thing in the answer (leading whitespace aside). A
literal ``<think>`` anywhere later stays text. Everything up to ``</think>`` is reasoning; the
whitespace between the closing tag and the answer is dropped. A tag left open when the stream
ends (the output cap hit mid-thought) leaves all of it reasoning. Tags split over chunks are
held back only as long as they could still be a tag, so text streams without delay otherwise.
The result depends only on the concatenated text, never on how it was chunked.

Which targets get this: see ``enabled``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from ironspire.messages import ReasoningDelta, StreamEvent, TextDelta

if TYPE_CHECKING:
    from ironspire.protocols.base import Target

OPEN = "<think>"
CLOSE = "</think>"

#: the provider setting that turns the splitter on or off explicitly
SETTING = "inline_think"
_OFF = frozenset({"off", "false", "no", "0"})

_State = Literal["start", "think", "after", "text"]


def enabled(target: Target, default: bool) -> bool:
    """Whether answers from this target are searched for an opening ``<think>`` tag.

    The provider setting ``inline_think`` (``ironspire providers set openai inline_think on``)
    wins over ``default``, the adapter's own knowledge (Chat Completions:
    ``ChatCompletionsQuirks.inline_think``, set for Together, Fireworks, Groq and custom
    endpoints; Ollama: always), since elsewhere reasoning arrives in fields of its own.
    """
    value = target.settings.get(SETTING)
    if not value:
        return default
    return value.strip().lower() not in _OFF


def _held(buffer: str, tag: str) -> int:
    """How many trailing characters of ``buffer`` could be the start of ``tag``."""
    for n in range(min(len(tag) - 1, len(buffer)), 0, -1):
        if tag.startswith(buffer[-n:]):
            return n
    return 0


class ThinkSplitter:
    """Feeds answer text in, yields TextDelta and ReasoningDelta events out, in order."""

    __slots__ = ("_buffer", "_state")

    def __init__(self) -> None:
        self._state: _State = "start"
        self._buffer = ""

    def feed(self, text: str) -> Iterator[StreamEvent]:
        if not text:
            return
        state = self._state
        if state == "text":
            yield TextDelta(text)
        elif state == "start":
            self._buffer += text
            head = self._buffer.lstrip()
            if not head or (len(head) < len(OPEN) and OPEN.startswith(head)):
                return  # still undecided: whitespace, or a tag cut short
            if head.startswith(OPEN):
                self._state, self._buffer = "think", ""
                yield from self.feed(head[len(OPEN):])
            else:
                self._state, pending, self._buffer = "text", self._buffer, ""
                yield TextDelta(pending)
        elif state == "think":
            buffer = self._buffer + text
            end = buffer.find(CLOSE)
            if end >= 0:
                self._state, self._buffer = "after", ""
                if end:
                    yield ReasoningDelta(buffer[:end])
                yield from self.feed(buffer[end + len(CLOSE):])
                return
            keep = _held(buffer, CLOSE)
            self._buffer = buffer[len(buffer) - keep:] if keep else ""
            if len(buffer) > keep:
                yield ReasoningDelta(buffer[: len(buffer) - keep])
        else:  # after the closing tag: drop the whitespace before the answer
            rest = text.lstrip()
            if rest:
                self._state = "text"
                yield TextDelta(rest)

    def close(self) -> Iterator[StreamEvent]:
        """What is still held back when the text ends: undecided text, or an unclosed thought."""
        pending, self._buffer = self._buffer, ""
        if pending:
            yield ReasoningDelta(pending) if self._state == "think" else TextDelta(pending)
        if self._state == "start":
            self._state = "text"


def split(text: str) -> tuple[str, str]:
    """(reasoning, answer) for a whole text, by the same rule the streaming splitter follows."""
    head = text.lstrip()
    if not head.startswith(OPEN):
        return "", text
    reasoning, closed, answer = head[len(OPEN):].partition(CLOSE)
    return reasoning, answer.lstrip() if closed else ""
