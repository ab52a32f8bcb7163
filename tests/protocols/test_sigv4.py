"""SigV4 through our signing path: AWS's published example, what a Bedrock request carries,
the credential chain, and a loopback server that re-derives the signature from what it got."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import builtin
from ironspire.errors import CredentialsMissing
from ironspire.messages import Message
from ironspire.protocols.base import ChatRequest, Secrets, Target
from ironspire.protocols.bedrock_converse import BedrockConverse, signed_request
from ironspire.transport import RetryPolicy, Transport
from support.replay import Received, fresh_chain_credentials, json_answer, loopback, use_aws_files

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret


def target(secrets: dict[str, str], settings: dict[str, str] | None = None, base_url: str = "") -> Target:
    spec = ModelSpec("bedrock", "us.amazon.nova-micro-v1:0", "Nova Micro", 128_000, 10_000)
    return Target(builtin("bedrock"), spec, base_url, Secrets(secrets), settings or {"region": "us-east-1"})


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.datetime], None]:
    """botocore reads the time in one place; pin it to reproduce published signatures."""
    def pin(when: dt.datetime) -> None:
        monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: when)
    return pin


def test_published_iam_list_users_example(frozen_clock: Callable[[dt.datetime], None]) -> None:
    # docs.aws.amazon.com "Signature Version 4 signing examples": GET IAM ListUsers, 20150830T123600Z.
    frozen_clock(dt.datetime(2015, 8, 30, 12, 36, 0))
    wire = signed_request(
        "GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", None,
        target({"access_key_id": AKID, "secret_access_key": SECRET}), service="iam",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert wire.headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )
    assert wire.headers["X-Amz-Date"] == "20150830T123600Z"
    assert wire.content is None and wire.method == "GET"


def test_aws_test_suite_get_vanilla(frozen_clock: Callable[[dt.datetime], None]) -> None:
    # aws-sig-v4-test-suite "get-vanilla": GET / on example.amazonaws.com, service "service".
    frozen_clock(dt.datetime(2015, 8, 30, 12, 36, 0))
    wire = signed_request("GET", "https://example.amazonaws.com/", None,
                          target({"access_key_id": AKID, "secret_access_key": SECRET}), service="service")
    assert wire.headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_bedrock_request_is_signed_for_bedrock_in_its_region(frozen_clock: Callable[[dt.datetime], None]) -> None:
    frozen_clock(dt.datetime(2026, 3, 1, 9, 30, 5))
    tgt = target({"access_key_id": AKID, "secret_access_key": SECRET}, {"region": "eu-central-1"})
    wire = BedrockConverse(Transport()).encode(ChatRequest((Message.user("hi"),)), tgt, stream=False)
    auth = wire.headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260301/eu-central-1/bedrock/aws4_request, ")
    assert "SignedHeaders=content-type;host;x-amz-date," in auth
    assert wire.headers["X-Amz-Date"] == "20260301T093005Z"
    assert "X-Amz-Security-Token" not in wire.headers
    assert wire.url.startswith("https://bedrock-runtime.eu-central-1.amazonaws.com/model/")
    assert json.loads(wire.content or b"") == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    assert SECRET not in repr(wire.headers)


def test_session_token_is_sent_and_signed() -> None:
    tgt = target({"access_key_id": "ASIAEXAMPLE", "secret_access_key": SECRET, "session_token": "tok-123"})
    wire = BedrockConverse(Transport()).encode(ChatRequest((Message.user("hi"),)), tgt, stream=True)
    assert wire.headers["X-Amz-Security-Token"] == "tok-123"
    assert "x-amz-security-token" in re.search(r"SignedHeaders=([^,]+)", wire.headers["Authorization"]).group(1)  # type: ignore[union-attr]


def test_control_plane_probe_request() -> None:
    tgt = target({"access_key_id": AKID, "secret_access_key": SECRET}, {"region": "us-west-2"})
    wire = signed_request("GET", "https://bedrock.us-west-2.amazonaws.com/foundation-models", None, tgt)
    assert "/us-west-2/bedrock/aws4_request, SignedHeaders=host;x-amz-date," in wire.headers["Authorization"]
    assert wire.content is None


def test_missing_secret_names_the_field() -> None:
    with pytest.raises(CredentialsMissing, match="secret_access_key"):
        signed_request("GET", "https://bedrock.us-east-1.amazonaws.com/foundation-models", None,
                       target({"access_key_id": AKID}))


def test_credential_chain_reads_a_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[team]\naws_access_key_id = AKIAPROFILEEXAMPLE\naws_secret_access_key = s3cr3t\n")
    use_aws_files(monkeypatch, tmp_path / "config", creds)
    with fresh_chain_credentials():
        tgt = target({}, {"region": "us-east-1", "credential_chain": "true", "profile": "team"})
        wire = signed_request("GET", "https://bedrock.us-east-1.amazonaws.com/foundation-models", None, tgt)
    assert wire.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAPROFILEEXAMPLE/")


# --- the server's view ---------------------------------------------------------------------------


def recording_server() -> AbstractAsyncContextManager[tuple[str, list[Received]]]:
    return loopback(lambda _: json_answer({
        "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
        "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 1}}))


async def test_signature_verifies_against_the_bytes_received(monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-derive the signature from the request line, headers and body as they arrived: this
    fails if the HTTP client changed the path encoding, the Host, or a byte of the signed body."""
    async with recording_server() as (url, seen):
        transport = Transport(RetryPolicy(attempts=1))
        tgt = target({"access_key_id": AKID, "secret_access_key": SECRET, "session_token": "tok"}, base_url=url)
        try:
            message = await BedrockConverse(transport).complete(
                ChatRequest((Message.user("héllo ✓"),), system="sys"), tgt)
        finally:
            await transport.close()
    assert message.text == "ok"
    request_line, received, body = seen[0]  # header names lower-cased
    method, path, _ = request_line.split(" ")
    assert path == "/model/us.amazon.nova-micro-v1%3A0/converse"
    stamp = dt.datetime.strptime(received["x-amz-date"], "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: stamp)
    again = AWSRequest(method=method, url=f"{url}{path}", data=body,
                       headers={"Content-Type": received["content-type"]})
    SigV4Auth(Credentials(AKID, SECRET, "tok"), "bedrock", "us-east-1").add_auth(again)
    assert again.headers["Authorization"] == received["authorization"]
    assert json.loads(body)["messages"][0]["content"][0]["text"] == "héllo ✓"
