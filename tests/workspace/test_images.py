"""Issue 17 item 9: an image is checked by its content and its size, against the provider's
documented limit, before the turn stores or sends anything."""

from __future__ import annotations

import base64

import pytest

from ironspire.errors import BadRequest
from ironspire.messages import Image, Message
from ironspire.workspace import Workspace
from ironspire.workspace.images import MAX_BYTES, sniff

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(("image", "match"), [
    (Image("image/png", data=_b64(b"just some text, not a picture")), "not a PNG, JPEG, GIF or WebP"),
    (Image("image/png", data="this is %% not base64!"), "not valid base64"),
    (Image("image/png", data=_b64(JPEG)), "image/jpeg by its content but was given as image/png"),
    (Image("image/jpeg", data=_b64(b"\xff\xd8\xff" + b"\x00" * (6 * 1024 * 1024))), "takes images up to 5.00 MB"),
])
async def test_a_bad_image_is_refused_before_anything_is_stored(ws: Workspace, image: Image, match: str) -> None:
    ws.credentials.set("claude-api", "api_key", "sk-ant-images-test-0123456789")
    ws.set_provider_setting("claude-api", "base_url", "http://127.0.0.1:9")  # never reached
    agent = ws.create_agent("eyes", "claude-api", "claude-sonnet-5-5")
    with pytest.raises(BadRequest, match=match) as err:
        await agent.send(Message.user("what is this?", image))
    assert err.value.provider == "claude-api"
    assert agent.transcript() == [] and ws.analytics.turns() == []


def test_content_is_what_counts() -> None:
    assert sniff(PNG) == "image/png" and sniff(JPEG) == "image/jpeg" and sniff(b"GIF89a...") == "image/gif"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp" and sniff(b"%PDF-1.7") is None


def test_limits_follow_each_provider() -> None:
    assert MAX_BYTES["bedrock_converse"] < MAX_BYTES["anthropic_messages"] < MAX_BYTES["openai_chat"]


def test_a_good_image_still_goes() -> None:
    from ironspire.workspace import images

    images.check(Message.user("hi", Image("image/png", data=_b64(PNG))), "openai_chat", "openai", "gpt-4.1")
