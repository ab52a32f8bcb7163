"""Bedrock cases found in review: a history that opens with the assistant, credentials from
botocore's chain resolved without stalling the event loop, and inference-profile ids.

The credential chain here is botocore's real one, reading a profile whose ``credential_process``
is a slow script (it sleeps like an SSO refresh does network I/O), so the test measures what a
user with SSO would feel: whether other agents' work stalls while credentials are fetched.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import builtin
from ironspire.errors import AuthenticationError, BadRequest, ModelNotFound
from ironspire.messages import Message, Text, ToolCall, ToolResult
from ironspire.protocols import bedrock_converse
from ironspire.protocols.base import ChatRequest, Secrets, Target
from ironspire.protocols.bedrock_converse import LEADING_USER_TEXT, BedrockConverse, profile_geo
from ironspire.transport import RetryPolicy, Transport
from support.replay import (
    Received,
    credential_process,
    fresh_chain_credentials,
    json_answer,
    loopback,
    ticking,
    use_aws_files,
)

MODEL = "us.amazon.nova-micro-v1:0"


def target(model: str = MODEL, *, settings: dict[str, str] | None = None, base_url: str = "",
           secrets: dict[str, str] | None = None) -> Target:
    spec = ModelSpec("bedrock", model, model, 128_000, 10_000, tools=True)
    if secrets is None:
        secrets = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret-example"}
    return Target(builtin("bedrock"), spec, base_url, Secrets(secrets), settings or {"region": "us-east-1"})


def body_of(request: ChatRequest, tgt: Target | None = None) -> dict[str, Any]:
    wire = BedrockConverse(Transport()).encode(request, tgt or target(), stream=False)
    assert wire.content is not None
    parsed: dict[str, Any] = json.loads(wire.content)
    return parsed


# --- a history that opens with the assistant -----------------------------------------------------


def test_history_opening_with_the_assistant_gets_a_user_turn_first() -> None:
    call = ToolCall("call_1", "lookup", {"q": "x"}, provider="openai", model="gpt-5")
    history = (
        Message.system("Be brief."),
        Message("assistant", (Text("Hello, how can I help?"),)),
        Message.user("What is 2+2?"),
        Message("assistant", (call,)),
        Message.tool(ToolResult("call_1", "lookup", (Text("4"),))),
    )
    messages = body_of(ChatRequest(history))["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert messages[0]["content"] == [{"text": LEADING_USER_TEXT}]
    assert messages[1]["content"] == [{"text": "Hello, how can I help?"}]


def test_history_opening_with_a_tool_call_keeps_call_and_result_paired() -> None:
    """An imported history whose first turn is the assistant calling a tool."""
    call = ToolCall("call_1", "lookup", {"q": "x"}, provider="openai", model="gpt-5")
    history = (Message("assistant", (call,)), Message.tool(ToolResult("call_1", "lookup", (Text("4"),))))
    messages = body_of(ChatRequest(history))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "toolUse" in messages[1]["content"][0] and "toolResult" in messages[2]["content"][0]


def test_history_opening_with_the_user_is_unchanged() -> None:
    messages = body_of(ChatRequest((Message.user("hi"),)))["messages"]
    assert messages == [{"role": "user", "content": [{"text": "hi"}]}]


# --- inference-profile ids -------------------------------------------------------------------------

ON_DEMAND = ("Invocation of model ID amazon.nova-2-lite-v1:0 with on-demand throughput isn’t supported. "
             "Retry your request with the ID or ARN of an inference profile that contains this model.")


def classify(tgt: Target, status: int, kind: str, message: str) -> Exception:
    return BedrockConverse(Transport()).error(status, {"x-amzn-errortype": f"{kind}:http://internal"},
                                              json.dumps({"message": message}).encode(), tgt)


@pytest.mark.parametrize(("region", "profile"), [
    ("us-east-1", "us.amazon.nova-2-lite-v1:0"), ("eu-west-1", "eu.amazon.nova-2-lite-v1:0"),
    ("ap-northeast-1", "apac.amazon.nova-2-lite-v1:0"),
])
def test_bare_id_needing_a_profile_names_the_profile_for_the_region(region: str, profile: str) -> None:
    err = classify(target("amazon.nova-2-lite-v1:0", settings={"region": region}), 400, "ValidationException",
                   ON_DEMAND)
    assert type(err) is BadRequest
    assert err.hint is not None and f"`{profile}`" in err.hint and "`global.amazon.nova-2-lite-v1:0`" in err.hint
    assert "on-demand throughput" in str(err)


def test_profile_of_another_geography_is_model_not_found_with_the_right_id() -> None:
    err = classify(target("us.amazon.nova-micro-v1:0", settings={"region": "eu-central-1"}), 400,
                   "ValidationException", "The provided model identifier is invalid.")
    assert isinstance(err, ModelNotFound)
    assert err.hint is not None and "`eu.amazon.nova-micro-v1:0`" in err.hint and "eu-central-1" in err.hint


def test_invalid_id_in_its_own_geography_keeps_the_generic_advice() -> None:
    err = classify(target("us.amazon.nova-nonexistent-v1:0"), 400, "ValidationException",
                   "The provided model identifier is invalid.")
    assert isinstance(err, ModelNotFound) and "inference profile" not in (err.hint or "")


def test_region_to_profile_prefix() -> None:
    assert [profile_geo(r) for r in ("us-west-2", "us-gov-west-1", "eu-north-1", "ap-south-1", "ca-central-1",
                                     "sa-east-1")] == ["us", "us-gov", "eu", "apac", "ca", None]


# --- the credential chain, off the event loop ------------------------------------------------------

SLOW = 0.6


@pytest.fixture
def slow_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A profile whose credentials come from a process that takes SLOW seconds; returns its run log."""
    with credential_process(tmp_path, monkeypatch, delay=SLOW,
                            credentials=("AKIACHAINEXAMPLE", "chain-secret", "chain-token"),
                            profiles={"sso-like": 60, "short-lived": 5}) as runs:
        yield runs


def converse_server() -> AbstractAsyncContextManager[tuple[str, list[Received]]]:
    return loopback(lambda _: json_answer({
        "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
        "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 1}}))


def runs(log: Path) -> int:
    """How many times the credential process has run."""
    return log.read_text().count("run") if log.exists() else 0


def chain_target(url: str, profile: str = "sso-like") -> Target:
    return target(base_url=url, secrets={},
                  settings={"region": "us-east-1", "credential_chain": "true", "profile": profile})


async def test_chain_credentials_resolve_without_stalling_the_loop_and_are_reused(slow_profile: Path) -> None:
    async with converse_server() as (url, seen):
        transport = Transport(RetryPolicy(attempts=1))
        backend = BedrockConverse(transport)
        try:
            reply, ticks, elapsed = await ticking(backend.complete(ChatRequest((Message.user("hi"),)),
                                                                   chain_target(url)))
            again, _, second = await ticking(backend.complete(ChatRequest((Message.user("hi"),)),
                                                              chain_target(url)))
        finally:
            await transport.close()
    assert reply.text == "ok" and again.text == "ok"
    assert elapsed >= SLOW
    # The loop kept running while the process ran: a blocked loop would tick about once.
    assert ticks >= (SLOW / 0.01) * 0.5, (ticks, elapsed)
    assert runs(slow_profile) == 1  # the second request reused the credentials
    assert second < SLOW
    for _, headers, _ in seen:
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIACHAINEXAMPLE/")
        assert headers["x-amz-security-token"] == "chain-token"


async def test_streamed_request_also_resolves_off_the_loop(slow_profile: Path) -> None:
    tgt = chain_target("http://127.0.0.1:9")
    await bedrock_converse.prepare_credentials(tgt)  # what stream() does first
    assert runs(slow_profile) == 1
    started = time.perf_counter()
    wire = BedrockConverse(Transport()).encode(ChatRequest((Message.user("hi"),)), tgt, stream=True)
    assert time.perf_counter() - started < SLOW / 2  # encode found them cached
    assert "Credential=AKIACHAINEXAMPLE/" in wire.headers["Authorization"]


async def test_credentials_near_expiry_are_fetched_again(slow_profile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tgt = chain_target("http://127.0.0.1:9", profile="short-lived")  # expires in 5 minutes
    await bedrock_converse.prepare_credentials(tgt)
    # botocore itself refreshes credentials this close to expiry as soon as they are read, so
    # the process may have run twice already; what matters is that we do not ask again...
    first = runs(slow_profile)
    await bedrock_converse.prepare_credentials(tgt)
    assert runs(slow_profile) == first  # cached for half their remaining life
    # ...until half their remaining life has passed.
    later = time.time() + 200
    monkeypatch.setattr(bedrock_converse, "_clock", lambda: later)
    await bedrock_converse.prepare_credentials(tgt)
    assert runs(slow_profile) > first


def test_pure_encode_still_resolves_the_chain_by_itself(slow_profile: Path) -> None:
    wire = BedrockConverse(Transport()).encode(ChatRequest((Message.user("hi"),)), chain_target("http://h"),
                                               stream=False)
    assert "Credential=AKIACHAINEXAMPLE/" in wire.headers["Authorization"]


async def test_a_failing_chain_is_an_authentication_error_with_advice(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config").write_text("[profile broken]\ncredential_process = /nonexistent/aws-creds\n")
    use_aws_files(monkeypatch, tmp_path / "config", tmp_path / "credentials")
    with fresh_chain_credentials():
        with pytest.raises(AuthenticationError) as info:
            await bedrock_converse.prepare_credentials(chain_target("http://h", profile="broken"))
        with pytest.raises(AuthenticationError):
            await bedrock_converse.prepare_credentials(chain_target("http://h", profile="no-such-profile"))
    assert "aws sso login" in (info.value.hint or "")


def test_expiry_is_read_from_botocore() -> None:
    """The cache relies on botocore keeping the expiry on RefreshableCredentials."""
    from botocore.credentials import RefreshableCredentials

    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    creds = RefreshableCredentials("a", "b", "c", expiry, dict, "test")
    assert creds._expiry_time == expiry


def test_user_can_choose_the_chain_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ironspire providers set bedrock credential_chain true` (+ `profile NAME`) is what turns it on."""
    from typer.testing import CliRunner

    from ironspire.cli.app import app
    from ironspire.workspace import Workspace
    from support.memory_keyring import use_memory_keyring

    for _ in use_memory_keyring(monkeypatch):
        creds = tmp_path / "credentials"
        creds.write_text("[team]\naws_access_key_id = AKIAPROFILEEXAMPLE\naws_secret_access_key = s3cr3t\n")
        use_aws_files(monkeypatch, tmp_path / "config", creds)
        runner = CliRunner()
        for name, value in (("credential_chain", "true"), ("profile", "team"), ("region", "eu-west-1")):
            done = runner.invoke(app, ["providers", "set", "bedrock", name, value])
            assert done.exit_code == 0, done.output
        ws = Workspace.open()
        with fresh_chain_credentials():
            try:
                tgt = ws.target("bedrock", MODEL)
                wire = BedrockConverse(Transport()).encode(ChatRequest((Message.user("hi"),)), tgt, stream=False)
            finally:
                ws.close()
        assert wire.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAPROFILEEXAMPLE/")
        assert "/eu-west-1/bedrock/aws4_request" in wire.headers["Authorization"]
