"""Settings > Providers: cards with live status dots, credentials (write-only), base-URL
overrides, enable/disable, checks, the default picker and Add Custom Endpoint.

Every write goes through the same workspace and credential-store calls as the CLI's
`providers set-key|remove-key|set|enable|disable|add-custom` and `default set`, so the two
cannot disagree; a key is stored in the credential store and never echoed back.
"""

from __future__ import annotations

from typing import Any

import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ironspire import views
from ironspire.catalog.providers import GROUP_TITLES
from ironspire.errors import ConfigurationError, IronspireError, mask
from ironspire.views import HealthView, ProviderView
from ironspire.web import records
from ironspire.web.live import shown
from ironspire.web.security import form_of
from ironspire.web.state import back, wants_json, web
from ironspire.workspace import routing

PAGE = "/settings/providers"
CHECK_TIMEOUT = 5.0

CUSTOM_FIELDS = ("name", "base_url", "model_id", "display_name", "context_window")


def _card(pid: str) -> str:
    return f"{PAGE}#card-{pid}"


def card(ws: Any, view: ProviderView) -> dict[str, Any]:
    """A card: the provider's record, and what the page offers beyond its credential fields (the
    base-URL override; for claude-sdk whether the CLI is there and logged in, and its terms)."""
    spec = ws.provider(view.id)
    auth_names = {f.name for f in view.auth}
    out: dict[str, Any] = {"v": view, "base_url_setting": "base_url" in routing.allowed_settings(spec)
                           and "base_url" not in auth_names}
    if view.id == "claude-sdk":
        from ironspire.health import find_claude_cli

        out["cli_found"] = find_claude_cli(ws.provider_settings("claude-sdk").get("cli_path")) is not None
        out["logged_in"] = view.health.healthy
        out["terms"] = records.CLAUDE_SDK_TERMS
    return out


def page_context(request: Request, *, custom_form: dict[str, Any] | None = None,
                 custom_error: str | None = None) -> dict[str, Any]:
    ws = web(request).ws
    cards = [card(ws, v) for v in records.providers(ws)]
    groups = [(title, [c for c in cards if c["v"].group == group]) for group, title in GROUP_TITLES.items()]
    models = [(pid, ws.registry.list(provider=pid)) for pid in ws.provider_ids() if ws.is_enabled(pid)]
    return {"groups": groups, "default": records.default(ws),
            "model_choices": [(pid, ms) for pid, ms in models if ms], "custom_form": custom_form or {},
            "custom_error": custom_error, "notice": request.query_params.get("notice")}


async def providers_page(request: Request) -> Response:
    w = web(request)
    if w.check_on_start:
        w.feed.check_soon()  # checks run when the tab opens; the dots follow over the event stream
    return w.render(request, "providers.html", tab="providers", **page_context(request))


async def check_one(request: Request) -> Response:
    w = web(request)
    pid = w.ws.provider(request.path_params["pid"]).id
    records.monitor(w.ws).timeout = CHECK_TIMEOUT
    results = await w.feed.check([pid])
    if wants_json(request):
        return JSONResponse(shown(HealthView.of(results[pid])))
    return back(_card(pid))


async def check_all(request: Request) -> Response:
    w = web(request)
    records.monitor(w.ws).timeout = CHECK_TIMEOUT
    results = await w.feed.check()
    if wants_json(request):
        return JSONResponse([shown(HealthView.of(r)) for r in results.values()])
    return back(PAGE)


async def set_credential(request: Request) -> Response:
    """Sets (or replaces) one credential field; secret ones go to the credential store."""
    w = web(request)
    ws = w.ws
    spec = ws.provider(request.path_params["pid"])
    name = request.path_params["field"]
    field = spec.field(name)
    value = form_of(request.scope).get("value", "").strip()
    if not value:
        raise ConfigurationError(f"{spec.id}: no value was given for {field.label}; nothing was stored.")
    if field.secret:
        store = ws.credentials
        require = getattr(store, "require_secret_field", None)
        if require is not None:
            require(spec.id, name)
        store.set(spec.id, name, value)
        notice = f"Stored {spec.id} {name} ({mask(value)})."
    else:
        ws.set_provider_setting(spec.id, name, value)
        notice = f"{spec.id} {name} = {value}"
    ws.health.reset(spec.id)
    await _check_after_change(w, spec.id)
    return _done(request, spec.id, notice)


async def remove_credential(request: Request) -> Response:
    w = web(request)
    ws = w.ws
    spec = ws.provider(request.path_params["pid"])
    name = request.path_params["field"]
    field = spec.field(name)
    if field.secret:
        removed = ws.credentials.remove(spec.id, name)
        notice = f"Removed {spec.id} {name}." if removed else f"No stored {name} for {spec.id}."
    else:
        ws.set_provider_setting(spec.id, name, None)
        notice = f"{spec.id} {name} reset to its default."
    ws.health.reset(spec.id)
    w.feed.publish()
    return _done(request, spec.id, notice)


async def set_setting(request: Request) -> Response:
    """The base-URL override (and other non-secret settings); an empty value removes it."""
    w = web(request)
    ws = w.ws
    spec = ws.provider(request.path_params["pid"])
    form = form_of(request.scope)
    name = form.get("name", "base_url")
    value = form.get("value", "").strip() or None
    if name == "base_url" and value:
        _check_url(value, f"{spec.id}: base URL")
    ws.set_provider_setting(spec.id, name, value)
    ws.health.reset(spec.id)
    await _check_after_change(w, spec.id)
    return _done(request, spec.id, f"{spec.id} {name} = {value}" if value else f"{spec.id} {name} reset.")


async def toggle(request: Request) -> Response:
    w = web(request)
    ws = w.ws
    pid = ws.provider(request.path_params["pid"]).id
    on = request.url.path.endswith("/enable")
    await (ws.enable(pid) if on else ws.disable(pid))  # re-enabling resets pool, health and discovered models
    if on:
        await _check_after_change(w, pid)
    else:
        w.feed.publish()
    return _done(request, pid, f"{pid} {'enabled' if on else 'disabled'}.")


async def set_default(request: Request) -> Response:
    w = web(request)
    choice = form_of(request.scope).get("route", "")
    provider, sep, model = choice.partition("|")
    if not sep or not provider or not model:
        raise ConfigurationError("choose a provider and a model for the default.")
    w.ws.set_default(provider, model)
    return back(PAGE + "?" + str(httpx2.QueryParams({"notice": f"Default set to {provider} / {model}."})))


async def add_custom(request: Request) -> Response:
    """Add Custom Endpoint: refused inline (nothing saved) on a malformed URL, a duplicate name or
    an empty model id; on success saved and checked at once, so its dot shows straight away."""
    from ironspire.catalog.providers import CustomEndpoint

    w = web(request)
    ws = w.ws
    form = form_of(request.scope)
    kept: dict[str, Any] = {k: form.get(k, "") for k in CUSTOM_FIELDS}
    kept["tools"], kept["vision"] = bool(form.get("tools")), bool(form.get("vision"))
    try:
        endpoint = _custom_endpoint(ws, form, CustomEndpoint)
    except IronspireError as exc:
        if wants_json(request):
            return JSONResponse({"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}, 400)
        return w.render(request, "providers.html", status=400, tab="providers",
                        **page_context(request, custom_form=kept, custom_error=str(exc)))
    spec = ws.add_custom_endpoint(endpoint, form.get("api_key", "").strip() or None)
    records.monitor(w.ws).timeout = CHECK_TIMEOUT
    results = await w.feed.check([spec.id])
    if wants_json(request):
        return JSONResponse({"provider": views.provider(ws, spec.id).to_json(), "health": results[spec.id].to_dict()})
    return back(_card(spec.id))


def _custom_endpoint(ws: Any, form: dict[str, str], cls: Any) -> Any:
    name = form.get("name", "").strip()
    if not name:
        raise ConfigurationError("the endpoint needs a name.")
    base_url = form.get("base_url", "").strip()
    _check_url(base_url, "base URL")
    model_id = form.get("model_id", "").strip()
    if not model_id:
        raise ConfigurationError("the model id is empty.", hint="Give the id the endpoint serves, e.g. llama3.1:8b.")
    raw_window = form.get("context_window", "").strip() or "32768"
    try:
        window = int(raw_window)
        if window <= 0:
            raise ValueError
    except ValueError:
        raise ConfigurationError(f"the context window must be a positive number of tokens, not {raw_window!r}.") \
            from None
    endpoint = cls(name, base_url, model_id, form.get("display_name", "").strip() or None, window,
                   tools=bool(form.get("tools")), vision=bool(form.get("vision")))
    if endpoint.provider_id in ws.provider_ids():
        raise ConfigurationError(f"an endpoint named {name!r} already exists ({endpoint.provider_id}).",
                                 hint="Choose another name.")
    return endpoint


def _check_url(value: str, what: str) -> None:
    try:
        url = httpx2.URL(value)
    except Exception:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"{what} {value!r} is not a valid URL.",
                                 hint="Write it in full, e.g. https://my-server.example.com/v1.")


async def _check_after_change(w: Any, pid: str) -> None:
    """A changed credential, URL or enablement: check it now, so the dot says what it means."""
    if w.ws.is_enabled(pid):
        records.monitor(w.ws).timeout = CHECK_TIMEOUT
        await w.feed.check([pid])
    else:
        w.feed.publish()


def _done(request: Request, pid: str, notice: str) -> Response:
    if wants_json(request):
        return JSONResponse({"ok": True, "notice": notice, "provider": views.provider(web(request).ws, pid).to_json()})
    return back(PAGE + "?" + str(httpx2.QueryParams({"notice": notice})) + f"#card-{pid}")


def routes() -> list[BaseRoute]:
    return [
        Route(PAGE, providers_page),
        Route(PAGE + "/check", check_all, methods=["POST"]),
        Route(PAGE + "/default", set_default, methods=["POST"]),
        Route(PAGE + "/custom", add_custom, methods=["POST"]),
        Route(PAGE + "/{pid}/check", check_one, methods=["POST"]),
        Route(PAGE + "/{pid}/credentials/{field}", set_credential, methods=["POST"]),
        Route(PAGE + "/{pid}/credentials/{field}/remove", remove_credential, methods=["POST"]),
        Route(PAGE + "/{pid}/settings", set_setting, methods=["POST"]),
        Route(PAGE + "/{pid}/enable", toggle, methods=["POST"]),
        Route(PAGE + "/{pid}/disable", toggle, methods=["POST"]),
    ]
