"""Images checked by content and size before a turn stores or sends anything.

A file named .png may be anything; a 100 MB picture would be resent with every later turn and
refused by the provider each time. So the bytes are decoded (strict base64), the format is read
from the file's own signature, and the size is held against what each protocol's provider
documents, before the user's message becomes part of the history.
"""

from __future__ import annotations

import base64
import binascii

from ironspire.errors import BadRequest
from ironspire.messages import Image, Message

#: formats by their leading bytes (WebP: "RIFF" + size + "WEBP")
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))
MB = 1024 * 1024
#: per image, as each provider documents it: Anthropic 5 MB, Bedrock Converse 3.75 MB, OpenAI
#: 20 MB, Gemini 20 MB for the whole inline request; Ollama documents none (20 MB here)
MAX_BYTES = {"anthropic_messages": 5 * MB, "claude_cli": 5 * MB, "bedrock_converse": 3_932_160,
             "openai_chat": 20 * MB, "openai_responses": 20 * MB, "gemini": 20 * MB, "ollama_chat": 20 * MB}
ACCEPTED = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def sniff(data: bytes) -> str | None:
    """The image format the bytes really are, or None."""
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _size(image: Image) -> int:
    data = image.data or ""
    return len(data) * 3 // 4


def check(message: Message, protocol: str, provider: str, model: str) -> None:
    """Refuses (BadRequest naming the image) an inline image of ``message`` that is not valid
    base64, not a PNG/JPEG/GIF/WebP by its content, not what its media type says, or larger than
    the provider takes. Images given by URL are the provider's to fetch."""
    limit = MAX_BYTES.get(protocol, 20 * MB)
    images = [p for p in message.parts if isinstance(p, Image) and p.data is not None]
    for n, image in enumerate(images, 1):
        what = f"image {n} of the message"
        if _size(image) > limit:
            raise BadRequest(provider, f"{what} is {_size(image) / MB:.1f} MB; {provider} takes images up to "
                             f"{limit / MB:.2f} MB", model=model, hint="Scale or compress it, then send it again.")
        try:
            raw = base64.b64decode(image.data or "", validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(provider, f"{what} is not valid base64 data", model=model,
                             hint="Attach the image file itself (PNG, JPEG, GIF or WebP).") from None
        real = sniff(raw)
        if real is None:
            raise BadRequest(provider, f"{what} is not a PNG, JPEG, GIF or WebP image (by its content)", model=model,
                             hint="Attach a PNG, JPEG, GIF or WebP file.")
        if real != image.media_type:
            raise BadRequest(provider, f"{what} is {real} by its content but was given as {image.media_type}",
                             model=model, hint=f"Send it as {real}.")
