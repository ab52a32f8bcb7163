"""A second process on a workspace home, driven by the two-process tests over stdin/stdout.

One JSON command per line in, one JSON answer per line out, all on one event loop and one open
Workspace (as a long-running server or chat session would hold it):

- ``{"op": "send", "agent": NAME, "text": TEXT}`` -> ``{"ok": true, "text": REPLY}`` or
  ``{"ok": false, "error": CLASS, "message": STR}``
- ``{"op": "burst", "agent": NAME, "prefix": P, "n": N}``: N turns in a row -> ``{"ok": true}``
- ``{"op": "set", "pid": PID, "name": NAME, "value": V, "n": N}``: N provider-setting writes
- ``{"op": "quit"}``
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from ironspire.workspace import Workspace


async def handle(ws: Workspace, cmd: dict[str, Any]) -> dict[str, Any]:
    op = cmd["op"]
    try:
        if op == "send":
            reply = await ws.agent(cmd["agent"]).send(cmd["text"])
            return {"ok": True, "text": reply.text}
        if op == "burst":
            agent = ws.agent(cmd["agent"])
            for i in range(int(cmd["n"])):
                await agent.send(f"{cmd['prefix']}{i}")
            return {"ok": True}
        if op == "set":
            for i in range(int(cmd["n"])):
                ws.set_provider_setting(cmd["pid"], cmd["name"], f"{cmd['value']}{i}")
            return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    raise ValueError(f"unknown op {op!r}")


async def main(home: str) -> None:
    ws = Workspace.open(home)
    try:
        print(json.dumps({"ready": True}), flush=True)
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line or json.loads(line)["op"] == "quit":
                return
            print(json.dumps(await handle(ws, json.loads(line))), flush=True)
    finally:
        await ws.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
