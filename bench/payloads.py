"""The canned model answers the loopback server sends, and the facts every client must get back.

Everything is built once at import: the server only copies bytes, so its cost stays flat and the
clients are what the run measures. Server and clients import the same constants, which is how
the harness checks that each client really decoded the whole answer and its usage.
"""

from __future__ import annotations

import json

CHUNKS = 50
TOKENS = tuple(f"w{i:02d} " for i in range(CHUNKS))
TEXT = "".join(TOKENS)
INPUT_TOKENS = 21
OUTPUT_TOKENS = CHUNKS
PROMPT = "Say fifty words."

OPENAI_MODEL = "gpt-4.1-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
CREATED = 1_767_225_600


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def openai_body() -> bytes:
    return _dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": OPENAI_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                  "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS},
        "system_fingerprint": "fp_bench",
    })


def openai_events() -> list[bytes]:
    """SSE events as OpenAI sends them with ``stream_options.include_usage``: role, 50 deltas,
    the finish chunk, the usage chunk (``choices: []``) and ``[DONE]``."""

    def chunk(choices: list[object], usage: object = None) -> bytes:
        return b"data: " + _dumps({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED,
            "model": OPENAI_MODEL, "system_fingerprint": "fp_bench", "choices": choices, "usage": usage,
        }) + b"\n\n"

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [chunk([{"index": 0, "delta": {"content": t}, "finish_reason": None}]) for t in TOKENS]
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(chunk([], {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                             "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}))
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_body() -> bytes:
    return _dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    })


def anthropic_events() -> list[bytes]:
    def event(name: str, data: object) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"

    start = {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}
    events = [event("message_start", start),
              event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}})]
    events += [event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": t}}) for t in TOKENS]
    events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                          "usage": {"output_tokens": OUTPUT_TOKENS}}))
    events.append(event("message_stop", {"type": "message_stop"}))
    return events


def models_body() -> bytes:
    return _dumps({"object": "list", "data": [{"id": OPENAI_MODEL, "object": "model", "owned_by": "bench"}]})
