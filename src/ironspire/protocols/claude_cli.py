"""``claude-sdk``: turns answered by the user's Claude subscription through the Claude Code CLI.

The CLI is driven by the official ``claude-agent-sdk`` (an optional extra; its wheel bundles the
CLI). The SDK runs the control protocol and parses the CLI's stream-json output; the process is
started by ``claude_cli_transport.CliProcess`` with a command line and environment we build
ourselves, because the environment must never carry ``ANTHROPIC_API_KEY`` (the CLI would bill
that key instead of the subscription).

What a turn is:

* plain chat: no tools (``--tools ""``), one model turn (``--max-turns 1``), the agent's system
  prompt (``--system-prompt``), the model from the registry (``--model``), partial messages on
  (``--include-partial-messages``) so text streams as the raw Anthropic events, decoded by the
  same ``EventDecoder`` as ``claude-api``. Tools on the request are not offered to the CLI (it
  can only call MCP tools); forcing one is a CapabilityError.
* the CLI keeps its own session. Its id goes into ``Message.meta["session_id"]``; the next turn
  finds the last assistant message this provider produced and passes ``--resume=<id>``, sending
  only what came after it.
* history the CLI has not seen (the agent was on another provider, or a resumed session is
  missing) goes into the first user message as a transcript::

      Earlier in this conversation (a transcript; "assistant" turns were yours, possibly written
      with another model or provider):

      <transcript>
      <user>
      text
      </user>
      <assistant>
      text
      [called tool NAME with {"json": "arguments"}]
      </assistant>
      <tool_result name="NAME">
      result text
      </tool_result>
      </transcript>

      Continue the conversation: reply to the message below.

  followed by the documents the transcript mentions (as document blocks: they are what the
  conversation is about) and the new user message itself (text, images and documents as content
  blocks). Reasoning from the transcript follows ``ChatRequest.foreign_reasoning``; images in it
  become ``[image]``.
* cost: a subscription bills nothing per token, so ``meta["billed_usd"]`` is 0; the CLI's own
  API-equivalent figure (``total_cost_usd``) is kept as ``meta["cost_usd"]``.
* the CLI runs in a fixed working directory (``settings["cwd"]``, else ``IRONSPIRE_HOME/claude-sdk``):
  it stores sessions per directory, so resuming needs the same one, and a neutral directory
  keeps a project's CLAUDE.md and settings out of plain chat.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironspire.catalog.quirks import MessagesModelQuirks, quirks_of
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    CapabilityError,
    ConfigurationError,
    ContextWindowExceeded,
    IronspireError,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.messages import (
    Accumulator,
    Document,
    Finish,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    StreamEvent,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolResult,
    Usage,
    UsageEvent,
)
from ironspire.protocols.anthropic_messages import STOP_REASONS, EventDecoder, document_block, image_block
from ironspire.protocols.base import Backend, ChatRequest, ProbeOutcome, Target
from ironspire.protocols.common import conversation, foreign_reasoning, system_text, tool_results_text
from ironspire.transport import is_context_overflow

if TYPE_CHECKING:
    import claude_agent_sdk as sdk

LOGIN_HINT = "Run `claude` in a terminal and log in (`claude /login`) with your Claude subscription, then retry."
INSTALL_HINT = (
    "Install the extra that bundles the CLI: pip install 'ironspire[claude]'; or install Claude Code "
    "(https://docs.claude.com/en/docs/claude-code) so that `claude` is on PATH, or run "
    "`ironspire providers set claude-sdk cli_path /path/to/claude`."
)

# What the CLI needs from the parent environment; everything else (ANTHROPIC_API_KEY,
# ANTHROPIC_AUTH_TOKEN, ANTHROPIC_BASE_URL, CLAUDE_CODE_USE_BEDROCK, ...) stays out, so the CLI
# can only use its own login (or CLAUDE_CODE_OAUTH_TOKEN, a subscription token).
_ENV_NAMES = frozenset({
    "HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "TERM", "TZ", "TMPDIR", "TEMP", "TMP",
    "CLAUDE_CONFIG_DIR", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_AUTOUPDATER", "DISABLE_TELEMETRY", "DISABLE_ERROR_REPORTING",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
    # Windows
    "USERPROFILE", "APPDATA", "LOCALAPPDATA", "PROGRAMDATA", "SYSTEMROOT", "WINDIR", "COMSPEC",
    "PATHEXT", "HOMEDRIVE", "HOMEPATH", "USERNAME",
})
_ENV_PREFIXES = ("LC_", "XDG_")


class ClaudeCLI(Backend):
    name = "claude_cli"
    settings = ("cli_path",)

    def check_configured(self, target: Target) -> None:
        """Nothing to configure: the CLI's own login is the credential, checked by ``probe``."""

    async def probe(self, target: Target, limit: float) -> ProbeOutcome:
        from ironspire.protocols.claude_cli_probe import probe_claude_cli

        return await probe_claude_cli(target, limit)

    async def complete(self, request: ChatRequest, target: Target) -> Message:
        acc = Accumulator(target.provider.id, target.model.id)
        async for event in self.stream(request, target):
            acc.add(event)
        return acc.message()

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        sdk = load_sdk()
        from ironspire.protocols.claude_cli_transport import CliProcess

        content, resume = plan_turn(request, target)
        argv = command(find_cli(target), request, target, resume)
        cwd = workdir(target)
        process = CliProcess(argv, child_env(os.environ), str(cwd))
        decoder = CliDecoder(target)

        async def prompt() -> AsyncIterator[dict[str, Any]]:
            yield {"type": "user", "session_id": "", "parent_tool_use_id": None,
                   "message": {"role": "user", "content": content}}

        # ClaudeSDKClient rather than query(): leaving its context closes the CLI at once, also
        # when we stop at the result or raise an error mid-turn; query()'s generator does not
        # pass an early close on to the process.
        client = sdk.ClaudeSDKClient(options=sdk.ClaudeAgentOptions(cwd=cwd), transport=process)
        try:
            async with client:
                await client.query(prompt())
                async for message in client.receive_response():
                    for event in decoder.feed(message):
                        yield event
                    if decoder.done:
                        return
        except IronspireError:
            raise
        except (FileNotFoundError, PermissionError) as exc:
            raise ConfigurationError(f"claude-sdk: cannot start the Claude CLI ({exc}).", hint=INSTALL_HINT) from exc
        except sdk.ProcessError as exc:
            raise decoder.exit_error(exc.exit_code, exc.stderr or process.stderr_tail()) from exc
        except sdk.ClaudeSDKError as exc:
            if process.returncode:  # it died first; writing to it or reading from it failed after
                raise decoder.exit_error(process.returncode, process.stderr_tail()) from exc
            raise ProviderUnavailable(target.provider.id, f"Claude CLI failed: {exc}", model=target.model.id) from exc
        raise decoder.exit_error(None, process.stderr_tail())


# --- setup ------------------------------------------------------------------------------------------


def load_sdk() -> Any:
    try:
        import claude_agent_sdk
    except ImportError as exc:
        raise ConfigurationError(
            "claude-sdk needs the claude-agent-sdk package, which is not installed.",
            hint="Install it with: pip install 'ironspire[claude]'",
        ) from exc
    return claude_agent_sdk


def find_cli(target: Target) -> str:
    """The configured binary, else the one bundled in the claude-agent-sdk wheel, else ``claude`` on PATH."""
    configured = target.settings.get("cli_path")
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise ConfigurationError(f"claude-sdk: cli_path {configured!r} is not an executable file.",
                                 hint=INSTALL_HINT)
    sdk = load_sdk()
    bundled = Path(sdk.__file__).parent / "_bundled" / ("claude.exe" if os.name == "nt" else "claude")
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("claude")
    if found:
        return found
    raise ConfigurationError("claude-sdk: the Claude Code CLI (`claude`) was not found.", hint=INSTALL_HINT)


def child_env(parent: Mapping[str, str]) -> dict[str, str]:
    """The CLI's environment, built from an allow-list so no API key can reach it."""
    env = {k: v for k, v in parent.items() if k in _ENV_NAMES or k.startswith(_ENV_PREFIXES)}
    env["CLAUDE_CODE_ENTRYPOINT"] = "sdk-py"
    return env


def workdir(target: Target) -> Path:
    configured = target.settings.get("cwd")
    if configured:
        path = Path(configured).expanduser()
    else:
        from ironspire import paths

        path = paths.home() / "claude-sdk"
    path.mkdir(parents=True, exist_ok=True)
    return path


def command(cli: str, request: ChatRequest, target: Target, resume: str | None) -> list[str]:
    if request.force_tool or request.tool_choice == "required":
        raise CapabilityError(target.provider.id, target.model.id, "forced tool use",
                              "the Claude CLI runs plain chat without the agent's tools")
    argv = [
        cli, "--output-format", "stream-json", "--verbose", "--input-format", "stream-json",
        "--system-prompt", system_text(request) or "",
        "--tools", "", "--max-turns", "1", "--strict-mcp-config",
        "--model", target.model.id, "--include-partial-messages",
    ]
    if request.reasoning == "none" and quirks_of(target.model.quirks, MessagesModelQuirks).thinking != "always_on":
        argv += ["--thinking", "disabled"]
    elif request.reasoning in ("low", "medium", "high"):
        argv += ["--effort", request.reasoning]
    if resume:
        argv.append(f"--resume={resume}")  # equals form: the id can never be read as a flag
    return argv


# --- the prompt -------------------------------------------------------------------------------------


def plan_turn(request: ChatRequest, target: Target) -> tuple[list[dict[str, Any]], str | None]:
    """(content of the one user message to send, CLI session to resume)."""
    history = conversation(request)
    resume: str | None = None
    unseen = history
    for i in range(len(history) - 1, -1, -1):
        m = history[i]
        if m.role == "assistant" and m.provider == target.provider.id and m.meta.get("session_id"):
            resume, unseen = str(m.meta["session_id"]), history[i + 1:]
            break
    split = len(unseen)
    while split and unseen[split - 1].role != "assistant":
        split -= 1
    earlier, new = unseen[:split], unseen[split:]
    if not new:
        raise BadRequest(target.provider.id, "the conversation must end with a user message", model=target.model.id)
    content: list[dict[str, Any]] = []
    if earlier:
        content.append({"type": "text", "text": transcript(earlier, request)})
        # a document is what the earlier turns were about: it travels whole, as a block of its own
        content.extend(document_block(p, target.provider.id) for m in earlier for p in m.parts
                       if isinstance(p, Document))
    for message in new:
        content.extend(_new_blocks(message))
    if not content:
        raise BadRequest(target.provider.id, "the new user message is empty", model=target.model.id)
    return content, resume


def transcript(messages: Sequence[Message], request: ChatRequest) -> str:
    lines = ['Earlier in this conversation (a transcript; "assistant" turns were yours, possibly written '
             "with another model or provider):", "", "<transcript>"]
    for m in messages:
        if m.role == "tool":
            for part in m.parts:
                if isinstance(part, ToolResult):
                    status = ' error="true"' if part.is_error else ""
                    opening = f'<tool_result name="{part.tool_name}"{status}>'
                    lines += [opening, tool_results_text(part), "</tool_result>"]
            continue
        body = list(_transcript_lines(m, request))
        if body:
            lines += [f"<{m.role}>", *body, f"</{m.role}>"]
    lines += ["</transcript>", "", "Continue the conversation: reply to the message below."]
    return "\n".join(lines)


def _transcript_lines(message: Message, request: ChatRequest) -> Iterator[str]:
    for part in message.parts:
        if isinstance(part, Text):
            if part.text.strip():
                yield part.text
        elif isinstance(part, Image):
            yield "[image]"
        elif isinstance(part, Document):
            yield f"[document {part.name or part.media_type}, attached after the transcript]"
        elif isinstance(part, ToolCall):
            yield f"[called tool {part.name} with {json.dumps(dict(part.arguments), ensure_ascii=False)}]"
        elif isinstance(part, ToolResult):
            yield f"[result of {part.tool_name}: {tool_results_text(part)}]"
        elif isinstance(part, Reasoning):
            for text in foreign_reasoning(part, request):
                if isinstance(text, Text):
                    yield text.text


def _new_blocks(message: Message) -> Iterator[dict[str, Any]]:
    for part in message.parts:
        if isinstance(part, Text):
            if part.text.strip():
                yield {"type": "text", "text": part.text}
        elif isinstance(part, Image):
            yield image_block(part)
        elif isinstance(part, Document):
            yield document_block(part, "claude-sdk")
        elif isinstance(part, ToolResult):
            yield {"type": "text", "text": f"[result of {part.tool_name}: {tool_results_text(part)}]"}


# --- decoding ---------------------------------------------------------------------------------------


class CliDecoder:
    """Neutral events from the SDK's parsed CLI messages; ``done`` after a successful result.

    Text and reasoning stream from the partial-message events. A whole ``assistant`` message is
    used only when its content was not streamed (older CLIs, synthetic error messages). Tool use
    inside the CLI's own agent loop ran in the CLI, so it is not surfaced as a ToolCall (there
    is no result for the caller to send); subagent messages are skipped. Errors the CLI reports
    (``assistant.error``, a ``result`` with ``is_error``) become typed errors.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.done = False
        self.session_id: str | None = None
        self._api: EventDecoder | None = None
        self._streamed: set[str] = set()
        self._text_from: str | None = None
        self._limit: Any = None

    def feed(self, message: Any) -> list[StreamEvent]:
        sdk = load_sdk()
        self.session_id = getattr(message, "session_id", None) or self.session_id
        if getattr(message, "parent_tool_use_id", None):
            return []
        if isinstance(message, sdk.StreamEvent):
            return self._event(message.event)
        if isinstance(message, sdk.AssistantMessage):
            return self._assistant(message)
        if isinstance(message, sdk.ResultMessage):
            return self._result(message)
        if isinstance(message, sdk.SystemMessage):
            self.session_id = message.data.get("session_id") or self.session_id
        elif isinstance(message, sdk.RateLimitEvent):
            self._limit = message.rate_limit_info
        return []

    def _event(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        if event.get("type") == "message_start":
            self._api = EventDecoder(self.target)
            message_id = (event.get("message") or {}).get("id")
            if message_id:
                self._streamed.add(message_id)
        if self._api is None:
            return []
        out: list[StreamEvent] = []
        for e in self._api.feed(event):
            if isinstance(e, (ToolCallStart, ToolCallDelta, ToolCallEnd, UsageEvent, Finish)):
                continue  # the CLI's own tools; usage and the finish come with the result
            out.extend(self._text(e, self._api.message_id))
        return out

    def _text(self, event: StreamEvent, message_id: str | None) -> Iterator[StreamEvent]:
        """Keeps the texts of successive API calls in one turn apart."""
        if isinstance(event, TextDelta):
            if self._text_from is not None and self._text_from != message_id:
                yield TextDelta("\n\n")
            self._text_from = message_id
        yield event

    def _assistant(self, message: sdk.AssistantMessage) -> list[StreamEvent]:
        sdk = load_sdk()
        text = "".join(b.text for b in message.content if isinstance(b, sdk.TextBlock))
        if message.error:
            raise self._error(message.error, text or message.error)
        if message.message_id and message.message_id in self._streamed:
            return []
        out: list[StreamEvent] = []
        for block in message.content:
            if isinstance(block, sdk.TextBlock) and block.text:
                out.extend(self._text(TextDelta(block.text), message.message_id))
            elif isinstance(block, sdk.ThinkingBlock):
                out.append(ReasoningDelta(block.thinking, signature=block.signature or None))
        return out

    def _result(self, result: sdk.ResultMessage) -> list[StreamEvent]:
        self.session_id = result.session_id or self.session_id
        if result.is_error:
            detail = result.result or "; ".join(result.errors or []) or result.subtype
            raise self._error(None, detail, status=result.api_error_status)
        self.done = True
        raw = result.stop_reason
        meta = {"session_id": self.session_id, "cost_usd": float(result.total_cost_usd or 0.0), "billed_usd": 0.0}
        return [UsageEvent(usage_of(result.usage)),
                Finish(STOP_REASONS.get(raw, "other") if raw else "stop", raw, meta=meta)]

    def _error(self, kind: str | None, text: str, status: int | None = None) -> ProviderError:
        pid, model = self.target.provider.id, self.target.model.id
        low = text.lower()
        if kind == "authentication_failed" or status in (401, 403) or "/login" in low or "not logged in" in low:
            return AuthenticationError(pid, f"the Claude CLI is not logged in ({text})", model=model, status=status,
                                       hint=LOGIN_HINT)
        if kind == "rate_limit" or status == 429:
            return RateLimitError(pid, text, retry_after=self._retry_after(), model=model, status=status,
                                  hint="Your Claude subscription's usage limit was reached; wait for it to reset "
                                  "or move the agent to another provider.")
        if kind == "billing_error":
            return ProviderError(pid, text, model=model, status=status,
                                 hint="Check your Claude plan and billing at claude.ai.")
        if is_context_overflow(text):
            return ContextWindowExceeded(pid, text, limit=self.target.model.context_window, model=model, status=status)
        if kind == "invalid_request" or status == 400:
            return BadRequest(pid, text, model=model, status=status)
        if kind == "server_error" or (status is not None and status >= 500):
            return ProviderUnavailable(pid, text, model=model, status=status)
        return ProviderError(pid, text, model=model, status=status)

    def _retry_after(self) -> float | None:
        resets = getattr(self._limit, "resets_at", None)
        return max(float(resets) - time.time(), 0.0) if resets else None

    def exit_error(self, code: int | None, stderr: str) -> ProviderError:
        """The CLI ended without a result: a crash, or a stream cut mid-turn."""
        if code is None or code == 0:
            return ProviderUnavailable(self.target.provider.id, "stream ended early (the Claude CLI stopped "
                                       "without a result)", model=self.target.model.id)
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        return ProviderUnavailable(self.target.provider.id, f"the Claude CLI exited with code {code}: {tail}",
                                   model=self.target.model.id)


def usage_of(raw: Mapping[str, Any] | None) -> Usage:
    if not raw:
        return Usage.unknown()  # a result without usage says nothing about what the turn used
    details = raw.get("output_tokens_details") or {}
    return Usage(
        input=int(raw.get("input_tokens") or 0),
        output=int(raw.get("output_tokens") or 0),
        cache_read=int(raw.get("cache_read_input_tokens") or 0),
        cache_write=int(raw.get("cache_creation_input_tokens") or 0),
        reasoning=int(details.get("thinking_tokens") or 0) if isinstance(details, Mapping) else 0,
    )
