"""Loads recorded provider traffic from ../shared/realdata into one shape.

Two cassette dialects occur there: standard VCR YAML (request.body as a JSON string, response
body as text or gzip-compressed !!binary) and pydantic-ai's (JSON bodies as `parsed_body`).
vercel/ai fixtures (*.json, *.chunks.txt) are plain files and are read directly by tests.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Interaction:
    method: str
    uri: str
    request_headers: dict[str, str]
    request_json: Any
    status: int
    headers: dict[str, str]
    body: bytes
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def is_stream(self) -> bool:
        ctype = self.headers.get("content-type", "")
        return "event-stream" in ctype or "ndjson" in ctype or self.body.lstrip().startswith((b"data:", b"event:"))


def _headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (raw or {}).items():
        if isinstance(v, list):
            v = v[0] if v else ""
        if isinstance(v, bytes):
            v = v.decode("latin-1")
        out[str(k).lower()] = str(v)
    return out


def _body(section: dict[str, Any], headers: dict[str, str]) -> bytes:
    if "parsed_body" in section:
        return json.dumps(section["parsed_body"]).encode()
    body = section.get("body")
    if body is None:
        return b""
    if isinstance(body, dict):
        body = body.get("string", "")
    data = body.encode() if isinstance(body, str) else bytes(body)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def load(path: Path) -> list[Interaction]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for item in doc.get("interactions", []):
        req, resp = item["request"], item["response"]
        req_headers = _headers(req.get("headers"))
        req_body = _body(req, req_headers)
        try:
            req_json = json.loads(req_body) if req_body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            req_json = None
        headers = _headers(resp.get("headers"))
        status = resp.get("status", {}).get("code", 200)
        out.append(
            Interaction(req.get("method", "POST"), req.get("uri", ""), req_headers, req_json, int(status), headers,
                        _body(resp, headers))
        )
    return out
