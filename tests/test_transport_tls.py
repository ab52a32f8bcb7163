"""Every provider's pool shares one TLS context, whichever HTTP client is underneath: building one
reads the CA bundle, which would otherwise block the event loop once per provider (30 cards
checked at once in the web app). With aiohttp (the default) it is made at the first https
request, so a process that only talks plain HTTP to a local model never builds one."""

from __future__ import annotations

import contextlib
import ssl
import threading
from importlib import import_module
from typing import Any

import pytest

from ironspire import http
from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import CustomEndpoint, builtin
from ironspire.transport import Transport
from ironspire.wire import Target


@pytest.mark.parametrize("client", ["aiohttp", "httpx2"])
async def test_one_tls_context_serves_every_pool(client: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[Any, str]] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> Any:
        context = real(*args, **kwargs)
        made.append((context, threading.current_thread().name))
        return context

    import_module(f"ironspire.http._{client}")  # what the library builds at its own import is not a pool's
    monkeypatch.setenv("IRONSPIRE_HTTP_CLIENT", client)
    monkeypatch.setattr(ssl, "create_default_context", counting)
    http._build_tls.cache_clear()
    transport = Transport()
    try:
        local = CustomEndpoint("local", "http://127.0.0.1:8080/v1", "m").spec()
        transport.client(Target(local, dynamic_model(local.id, "m"), local.base_url))
        if client == "aiohttp":
            from ironspire.http._aiohttp import _tls

            assert _tls("http://127.0.0.1:8080/v1/chat/completions") is True
            assert made == []  # a process talking plain HTTP to a local model builds none
        for pid in ("openai", "mistral", "groq", "deepseek", "xai"):
            spec = builtin(pid)
            transport.client(Target(spec, dynamic_model(pid, "m"), spec.base_url))
        shared = http.tls_context()
        assert [id(c) for c, _ in made] == [id(shared)]
        if client == "aiohttp":
            # the first https pool started the one build, in a thread beside the client's import
            # (httpx2 takes the context when any pool opens, so it built it then, on the loop)
            assert made[0][1] == "ironspire-tls"
            from ironspire.http._aiohttp import _tls

            assert {id(_tls(builtin(pid).base_url)) for pid in ("openai", "mistral", "groq")} == {id(shared)}
        await transport.close("openai")
        spec = builtin("openai")
        transport.client(Target(spec, dynamic_model("openai", "m"), spec.base_url))  # a pool opened anew
        assert http.tls_context() is shared and len(made) == 1
    finally:
        await transport.close()
        http._build_tls.cache_clear()


def _self_signed(tmp: Any) -> ssl.SSLContext:
    """A server context whose certificate for 127.0.0.1 no public CA signed."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.mark.parametrize("client", ["aiohttp", "httpx2"])
async def test_an_https_provider_with_an_untrusted_certificate_is_refused(
        client: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The TLS context made at the first https request verifies: a server whose certificate no
    trusted CA signed gets no request (and so never sees the key)."""
    import asyncio

    from ironspire.errors import ProviderUnavailable
    from ironspire.wire import WireRequest

    heard: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            heard.append(await reader.read(1024))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=_self_signed(tmp_path))
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("IRONSPIRE_HTTP_CLIENT", client)
    transport = Transport()
    spec = builtin("openai")
    target = Target(spec, dynamic_model("openai", "m"), f"https://127.0.0.1:{port}/v1")
    try:
        wire = WireRequest("POST", f"https://127.0.0.1:{port}/v1/chat/completions",
                           {"authorization": "Bearer sk-never-sent"}, json={"model": "m"})
        with pytest.raises(ProviderUnavailable) as info:
            await transport.request(wire, target)
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
    assert "certificate verify failed" in str(info.value.__cause__).lower()
    assert not any(b"sk-never-sent" in h for h in heard)
