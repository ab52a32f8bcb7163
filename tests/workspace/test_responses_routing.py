"""Which OpenAI API a turn uses: the model's own need (GPT-6, gpt-5.5, o3 need Responses to use
tools with reasoning on), or the provider's ``api`` setting (Azure's /openai/v1/responses, a
custom endpoint that speaks Responses). Turns run against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import ConfigurationError
from ironspire.messages import Reasoning
from ironspire.protocols.openai_responses import OpenAIResponses
from ironspire.workspace import Workspace
from support.http_stub import Reply, Seen, StubServer

ENCRYPTED = "gAAAAAB-loopback-encrypted"


def responses_reply(step: int) -> dict[str, Any]:
    """A reasoning item and a call, then the answer: the two steps of a tool loop."""
    if step == 0:
        output: list[dict[str, Any]] = [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Need the weather."}],
             "encrypted_content": ENCRYPTED},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
             "arguments": '{"city":"Oslo"}', "status": "completed"}]
    else:
        output = [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "Sunny in Oslo."}]}]
    return {"id": f"resp_{step}", "object": "response", "status": "completed", "model": "m", "output": output,
            "usage": {"input_tokens": 20, "output_tokens": 9, "total_tokens": 29,
                      "output_tokens_details": {"reasoning_tokens": 4}}}


class Server:
    def __init__(self) -> None:
        self.turns = 0

    def __call__(self, seen: Seen) -> Reply:
        if seen.method == "GET":
            return Reply(200, {"object": "list", "data": [{"id": "gpt-6.1-sol", "object": "model"}]})
        if not seen.path.endswith("/responses"):
            return Reply(404, {"error": {"message": f"no route {seen.path}"}})
        body = responses_reply(self.turns)
        self.turns += 1
        return Reply(200, body)


def test_registry_models_that_need_responses_route_there(ws: Workspace) -> None:
    ws.credentials.set("openai", "api_key", "sk-routing-test-0123")
    for model in ("gpt-6-astra", "gpt-6.1-sol", "gpt-6.1-terra", "gpt-6-luna", "gpt-5.5", "o3"):
        target = ws.target("openai", model)
        assert target.provider.protocol == "openai_responses", model
        assert isinstance(ws.backend(target.provider.protocol), OpenAIResponses)
        assert not hasattr(target.model.quirks, "tools_need_reasoning_off")  # the downgrade is gone
    assert ws.target("openai", "gpt-4.1").provider.protocol == "openai_chat"
    ws.set_provider_setting("openai", "api", "chat")  # the user's choice wins over the model's default
    assert ws.target("openai", "gpt-6.1-sol").provider.protocol == "openai_chat"
    with pytest.raises(ConfigurationError, match="api must be one of chat, responses"):
        ws.set_provider_setting("openai", "api", "assistants")
    assert ws.provider_settings("openai")["api"] == "chat"  # the refused value changed nothing


def test_azure_responses_is_a_provider_setting(ws: Workspace) -> None:
    ws.credentials.set("azure-openai", "api_key", "azure-key-0123456789")
    ws.set_provider_setting("azure-openai", "base_url", "https://res.openai.azure.com")
    ws.set_provider_setting("azure-openai", "deployment", "prod")
    assert ws.target("azure-openai", "prod").provider.protocol == "openai_chat"
    ws.set_provider_setting("azure-openai", "api", "responses")
    target = ws.target("azure-openai", "prod")
    assert target.provider.protocol == "openai_responses"
    wire = OpenAIResponses().encode(_request(), target, stream=False)
    assert wire.url == "https://res.openai.azure.com/openai/v1/responses" and wire.json["model"] == "prod"
    probe = OpenAIResponses().probe_request(target)
    assert probe.url == "https://res.openai.azure.com/openai/v1/models" and probe.headers["api-key"]


def _request() -> Any:
    from ironspire.messages import Message
    from ironspire.protocols.base import ChatRequest

    return ChatRequest((Message.user("hi"),))


async def test_gpt6_agent_keeps_tools_and_reasoning_across_a_tool_loop(ws: Workspace) -> None:
    """The reasoning item of step one goes back, encrypted, right before its call in step two."""
    from ironspire.messages import Message, Text, ToolResult
    from ironspire.protocols.base import Tool

    server = Server()
    async with StubServer(resolver=server) as s:
        ws.credentials.set("openai", "api_key", "sk-routing-test-0123")
        ws.set_provider_setting("openai", "base_url", s.url + "/v1")
        agent = ws.create_agent("sol", provider="openai", model="gpt-6.1-sol")
        tools = (Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),)
        first = await agent.send("Weather in Oslo?", tools=tools)
        assert [type(p).__name__ for p in first.parts] == ["Reasoning", "ToolCall"]
        reasoning = first.parts[0]
        assert isinstance(reasoning, Reasoning) and (reasoning.provider, reasoning.model) == ("openai", "gpt-6.1-sol")
        result = Message.tool(ToolResult("call_1", "get_weather", (Text("sunny"),)))
        second = await agent.send(result, tools=tools)
        assert second.text == "Sunny in Oslo."
        sent = [json.loads(x.body) for x in s.seen if x.method == "POST"]
    assert all(x.path == "/v1/responses" for x in s.seen if x.method == "POST")
    assert sent[0]["tools"][0]["name"] == "get_weather" and sent[0]["store"] is False
    assert sent[0]["include"] == ["reasoning.encrypted_content"]
    items = sent[1]["input"]
    kinds = [i.get("type") or i.get("role") for i in items]
    assert kinds == ["user", "reasoning", "function_call", "function_call_output"]
    assert items[1]["encrypted_content"] == ENCRYPTED and items[2]["call_id"] == "call_1"


async def test_custom_endpoint_on_responses_lists_models_and_is_checked(ws: Workspace) -> None:
    server = Server()
    async with StubServer(resolver=server) as s:
        ws.add_custom_endpoint(CustomEndpoint("Open Responses", s.url + "/v1", "gpt-6.1-sol"))
        ws.set_provider_setting("custom-open-responses", "api", "responses")
        found = await ws.discover_models("custom-open-responses", refresh=True)
        assert found is not None and found.ok
        target = ws.target("custom-open-responses", "gpt-6.1-sol")
        assert target.provider.protocol == "openai_responses"
        probe = OpenAIResponses().probe_request(target)
        assert probe.method == "GET" and probe.url == s.url + "/v1/models"
        outcome = await ws.backend(target.provider.protocol).probe(target, 5.0)
        assert outcome.state == "reachable", outcome
        agent = ws.create_agent("open", provider="custom-open-responses", model="gpt-6.1-sol")
        reply = await agent.send("hi")
    assert reply.tool_calls and [x.path for x in s.seen if x.method == "POST"] == ["/v1/responses"]


def test_xai_responses_only_models_through_the_api_setting(ws: Workspace) -> None:
    """The registry holds no Responses-only xAI model (its 46 entries are fixed by the spec); a model
    added later names the API itself (ModelSpec.api), and the provider setting covers the rest."""
    ws.credentials.set("xai", "api_key", "xai-routing-test-0123")
    assert ws.target("xai", "grok-4.3").provider.protocol == "openai_chat"
    ws.set_provider_setting("xai", "api", "responses")
    target = ws.target("xai", "grok-4.3")
    assert target.provider.protocol == "openai_responses"
    assert OpenAIResponses().encode(_request(), target, stream=False).url == "https://api.x.ai/v1/responses"
