"""Documents (PDF and other files) in each provider's own form, and the rules each form imposes.

The matrix in tests/conformance covers a document carried across every switch; this file pins
the per-provider details: Bedrock's name rules and formats, Anthropic's three source kinds,
Gemini's by-reference files, OpenAI's inline-only file parts, and the refusals.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ironspire.catalog.models import ModelSpec, Registry, dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.errors import BadRequest, CapabilityError
from ironspire.messages import Document, Message
from ironspire.protocols.anthropic_messages import AnthropicMessages
from ironspire.protocols.base import ChatRequest, HttpProtocol, Secrets, Target
from ironspire.protocols.bedrock_converse import BedrockConverse, document_name
from ironspire.protocols.gemini import Gemini
from ironspire.protocols.ollama_chat import OllamaChat
from ironspire.protocols.openai_chat import OpenAIChat
from ironspire.transport import Transport
from ironspire.workspace import preflight

PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()
NOTES = base64.b64encode("Meeting notes: ship on Friday. Ça va.".encode()).decode()
SECRETS = Secrets({"api_key": "k-test", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret-example"})


def target(provider: str, model: str | ModelSpec) -> Target:
    spec = model if isinstance(model, ModelSpec) else Registry().get(provider, model)
    prov = builtin(provider)
    return Target(prov, spec, prov.base_url or "http://127.0.0.1:9", SECRETS, {"region": "us-east-1"})


def body(adapter: type[HttpProtocol], tgt: Target, *parts: Document) -> Any:
    import json

    request = ChatRequest((Message.user("Summarise these.", *parts),))
    wire = adapter(Transport()).encode(request, tgt, stream=False)
    return wire.json if wire.json is not None else json.loads(wire.content or b"null")


# --- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_document_sources_base64_text_and_url() -> None:
    tgt = target("claude-api", "claude-sonnet-5")
    sent = body(AnthropicMessages, tgt, Document("application/pdf", data=PDF, name="report.pdf"),
                Document("text/plain", data=NOTES), Document("application/pdf", url="https://example.test/a.pdf"))
    blocks = sent["messages"][0]["content"]
    assert blocks[0] == {"type": "text", "text": "Summarise these."}
    assert blocks[1] == {"type": "document", "title": "report.pdf",
                         "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
    assert blocks[2] == {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                        "data": "Meeting notes: ship on Friday. Ça va."}}
    assert blocks[3] == {"type": "document", "source": {"type": "url", "url": "https://example.test/a.pdf"}}


# --- Bedrock -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "sent"), [
    ("Q3_report.v2.pdf", "Q3 report v2"),
    ("notes  (draft) [final].pdf", "notes (draft) [final]"),
    ("résumé — 2026.pdf", "r sum 2026"),
    ("...", "document"),
    (None, "document"),
    ("x" * 300 + ".pdf", "x" * 200),
])
def test_bedrock_document_names_follow_converse_rules(given: str | None, sent: str) -> None:
    name = document_name(given, "pdf")
    assert name == sent
    assert 1 <= len(name) <= 200 and "  " not in name
    assert all(c.isascii() and (c.isalnum() or c in " -()[]") for c in name)


def test_bedrock_document_block_format_bytes_and_unique_names() -> None:
    nova = target("bedrock", "us.amazon.nova-pro-v1:0")
    assert nova.model.documents
    sent = body(BedrockConverse, nova, Document("application/pdf", data=PDF, name="a.pdf"),
                Document("application/pdf", data=PDF, name="a.pdf"), Document("text/csv", data=NOTES, name="t.csv"),
                Document("application/pdf", url="s3://bucket/key.pdf", name="s3 doc"))
    docs = [b["document"] for b in sent["messages"][0]["content"] if "document" in b]
    assert docs == [
        {"format": "pdf", "name": "a", "source": {"bytes": PDF}},
        {"format": "pdf", "name": "a (2)", "source": {"bytes": PDF}},
        {"format": "csv", "name": "t", "source": {"bytes": NOTES}},
        {"format": "pdf", "name": "s3 doc", "source": {"s3Location": {"uri": "s3://bucket/key.pdf"}}},
    ]


def test_bedrock_refuses_a_format_converse_does_not_read() -> None:
    with pytest.raises(BadRequest, match="application/zip"):
        body(BedrockConverse, target("bedrock", "us.amazon.nova-pro-v1:0"), Document("application/zip", data=PDF))


# --- Gemini ------------------------------------------------------------------------------------


def test_gemini_document_inline_or_by_file_uri() -> None:
    tgt = target("google", "gemini-3.8-flash")
    uri = "https://generativelanguage.googleapis.com/v1beta/files/abc123"
    sent = body(Gemini, tgt, Document("application/pdf", data=PDF), Document("application/pdf", url=uri))
    parts = sent["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "application/pdf", "data": PDF}}
    assert parts[2] == {"fileData": {"mimeType": "application/pdf", "fileUri": uri}}


# --- OpenAI ------------------------------------------------------------------------------------


def test_openai_document_is_a_file_part_with_file_data() -> None:
    sent = body(OpenAIChat, target("openai", "gpt-4.1"), Document("application/pdf", data=PDF, name="r.pdf"),
                Document("application/pdf", data=PDF))
    content = sent["messages"][0]["content"]
    assert content[1] == {"type": "file",
                          "file": {"filename": "r.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}}
    assert content[2]["file"]["filename"] == "document-2.pdf"  # a name is required; one is made up


def test_openai_refuses_a_document_by_url_naming_the_fix() -> None:
    with pytest.raises(BadRequest, match="only inline") as info:
        body(OpenAIChat, target("openai", "gpt-4.1"), Document("application/pdf", url="https://example.test/a.pdf"))
    assert "base64" in (info.value.hint or "")


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "model"), [
    ("mistral", "mistral-large-2512"), ("deepseek", "deepseek-flash"), ("bedrock", "us.amazon.nova-micro-v1:0"),
    ("ollama", "llama3"), ("groq", "llama-3.3-70b-versatile"),
])
def test_preflight_refuses_a_document_for_a_model_that_cannot_read_one(provider: str, model: str) -> None:
    tgt = target(provider, model)
    request = ChatRequest((Message.user("Summarise.", Document("application/pdf", data=PDF, name="r.pdf")),))
    with pytest.raises(CapabilityError, match=r"documents: the conversation holds 1 document") as info:
        preflight.check(request, tgt)
    assert info.value.capability == "documents" and info.value.provider == provider
    assert "--capability documents" in (info.value.hint or "")


def test_preflight_passes_a_document_to_a_model_that_reads_one() -> None:
    request = ChatRequest((Message.user("Summarise.", Document("application/pdf", data=PDF)),))
    for provider, model in (("claude-api", "claude-sonnet-5"), ("google", "gemini-3.8-flash"), ("openai", "gpt-4.1")):
        assert preflight.check(request, target(provider, model)) == request


def test_ollama_encoder_refuses_a_document_itself() -> None:
    vision = dynamic_model("ollama", "qwen3-vl:8b", context_window=131_072, vision=True, documents=True)
    with pytest.raises(CapabilityError, match="documents"):
        body(OllamaChat, target("ollama", vision), Document("application/pdf", data=PDF))


def test_openai_chat_sends_a_text_file_as_text_and_refuses_other_non_pdf_files() -> None:
    """Chat Completions takes PDF only as a file part; a text file's content goes as text."""
    sent = body(OpenAIChat, target("openai", "gpt-4.1"), Document("text/plain", data=NOTES, name="notes.txt"))
    assert sent["messages"][0]["content"][1] == {
        "type": "text", "text": "[document notes.txt]\nMeeting notes: ship on Friday. Ça va."}
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    with pytest.raises(BadRequest, match="PDF documents only") as info:
        body(OpenAIChat, target("openai", "gpt-4.1"), Document(docx, data=PDF, name="brief.docx"))
    assert "PDF" in (info.value.hint or "")


def test_anthropic_refuses_a_document_type_it_cannot_read() -> None:
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    with pytest.raises(BadRequest, match="PDF or plain text"):
        body(AnthropicMessages, target("claude-api", "claude-sonnet-5"), Document(docx, data=PDF))


def test_responses_document_is_an_input_file_inline_or_by_url() -> None:
    from ironspire.protocols.openai_responses import OpenAIResponses

    sent = body(OpenAIResponses, target("openai", "gpt-6.1-sol"), Document("application/pdf", data=PDF, name="r.pdf"),
                Document("application/pdf", url="https://example.test/a.pdf"))
    content = sent["input"][0]["content"]
    assert content[1] == {"type": "input_file", "filename": "r.pdf",
                          "file_data": f"data:application/pdf;base64,{PDF}"}
    assert content[2] == {"type": "input_file", "file_url": "https://example.test/a.pdf"}
