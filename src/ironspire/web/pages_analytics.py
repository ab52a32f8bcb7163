"""The Analytics panel: the filter bar (agent, provider group, period, CSV exports) over five
tabs, every one a page with a JSON twin under ``/api/analytics/``; the filters live in the URL.

The figures come from ``ironspire.views.analytics`` (the ledger, aggregated by the store); this
module turns them into charts (``web/charts.py``: server-rendered SVG) and tables. A page polls
``/api/analytics/stamp`` and, when a request was recorded since it was drawn, fetches itself again
and swaps its panel in place: a turn made in the chat shows up without a reload. The CSV exports
stream from the database row by row.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ironspire.errors import ConfigurationError
from ironspire.views import analytics as panel
from ironspire.views.formatting import money
from ironspire.web import charts
from ironspire.web.state import back, web

PAGE = "/analytics"


def _filters(request: Request) -> panel.Filters:
    return panel.Filters.parse(request.query_params)


def count(n: float) -> str:
    n = float(n)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:.3g}" if n != int(n) else str(int(n))


def duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s"


def when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _charts(view: panel.TabView) -> dict[str, Any]:
    d = view.data
    if view.tab == "overview":
        s = d["series"]
        if not d["kpis"]["turns"] and not d["kpis"]["errors"]:
            return {}
        return {
            "spend": charts.stacked_bars("spend", "Spend over time, stacked by agent", s["buckets"], s["width"],
                                         s["spend"], y_label="spend (USD)", fmt=money),
            "tokens": charts.lines("tokens", "Tokens over time", s["buckets"], s["width"], {
                "input": s["tokens"]["input"], "output": s["tokens"]["output"],
                "cache read": s["tokens"]["cache_read"], "reasoning": s["tokens"]["reasoning"]},
                y_label="tokens per bucket", fmt=count),
        }
    if view.tab == "models":
        if not d["models"]:
            return {}
        return {
            "models_cost": charts.hbars("models-cost", "Cost by model", [
                (f"{r['provider']}/{r['model']}", r["cost_usd"], r["api_cost_usd"]) for r in d["models"][:12]],
                fmt=money, unit="USD", first="billed", second="API-equivalent"),
            "providers_tokens": charts.hbars("providers-tokens", "Tokens by provider", [
                (r["provider"], float(r["total_tokens"]), float(r["cache_read_tokens"])) for r in d["providers"]],
                fmt=count, unit="tokens", first="total (input + output)", second="of which cache read"),
        }
    if view.tab == "reliability" and d["transitions"]:
        return {"timeline": charts.timeline("health", "Health transitions", d["start"], d["end"], d["transitions"])}
    return {}


async def page(request: Request) -> Response:
    name = request.path_params.get("tab", "overview")
    w = web(request)
    filters = _filters(request)
    view = panel.tab(w.ws, name, filters, request.query_params)
    return w.render(request, "analytics.html", tab="analytics", view=view, filters=filters,
                    notice=request.query_params.get("notice"),
                    choices=panel.choices(w.ws), tabs_here=panel.TABS, charts=_charts(view), money=money,
                    count=count, duration=duration, when=when, outcomes=panel.OUTCOME_CHOICES,
                    outcome_labels=panel.OUTCOME_LABELS,
                    twin=f"/api{PAGE}/{name}?{filters.query()}")


async def twin(request: Request) -> Response:
    name = request.path_params["tab"]
    view = panel.tab(web(request).ws, name, _filters(request), request.query_params)
    return JSONResponse(view.to_json())


async def stamp(request: Request) -> Response:
    return JSONResponse({"stamp": panel.stamp(web(request).ws)})


def _stream(chunks: Iterator[str]) -> Iterator[bytes]:
    for text in chunks:
        if text:
            yield text.encode()


async def turns_csv(request: Request) -> Response:
    from ironspire.analytics import EXPORT_FIELDS

    ws = web(request).ws
    filters = _filters(request)
    panel.tab(ws, "turns", filters, {"page": "1"})  # validates the filters before streaming starts
    chunks = ws.analytics.iter_turns_csv(filters.period_arg, fields=EXPORT_FIELDS, **filters.args())
    return StreamingResponse(_stream(chunks), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="ironspire-turns-{filters.period}.csv"'})


async def summary_csv(request: Request) -> Response:
    import io

    from ironspire.analytics import SUMMARY_EXPORT_FIELDS

    ws = web(request).ws
    filters = _filters(request)
    by = request.query_params.get("by") or "agent"
    if by not in ("agent", "provider", "model"):
        raise ConfigurationError(f"by={by!r}: a summary is by agent, provider or model.")
    out = io.StringIO()
    ws.analytics.summary_csv(out, by, filters.period_arg, fields=SUMMARY_EXPORT_FIELDS,  # type: ignore[arg-type]
                             **filters.args())
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="ironspire-summary-{by}-{filters.period}.csv"'})


async def set_price(request: Request) -> Response:
    """The Models & providers tab's price form: the same ``Workspace.set_price`` / ``clear_price``
    as `ironspire models price`; the ledger costs the model's next requests at it."""
    from urllib.parse import urlencode

    from ironspire import views
    from ironspire.web.security import form_of
    from ironspire.web.state import wants_json

    ws = web(request).ws
    form = form_of(request.scope)
    provider, model = (form.get("provider") or "").strip(), (form.get("model") or "").strip()
    if not provider or not model:
        raise ConfigurationError("a price needs a provider and a model.")
    if form.get("clear"):
        ws.clear_price(provider, model)
    else:
        figures: dict[str, float] = {}
        for name in ("input", "output", "cache_read", "cache_write"):
            raw = (form.get(name) or "0").strip() or "0"
            try:
                figures[name] = float(raw)
            except ValueError:
                raise ConfigurationError(f"the {name} price must be a number of USD per million tokens, "
                                         f"not {raw!r}.") from None
        ws.set_price(provider, model, **figures)
    record = views.model_price(ws, provider, model)
    if wants_json(request):
        return JSONResponse(record.to_json())
    return back(f"{PAGE}/models?" + urlencode({"notice": record.describe()}))


def routes() -> list[BaseRoute]:
    return [
        Route(f"{PAGE}/prices", set_price, methods=["POST"]),
        Route(PAGE, lambda r: back(f"{PAGE}/overview" + (f"?{r.url.query}" if r.url.query else ""), 302)),
        Route(f"{PAGE}/export/turns.csv", turns_csv),
        Route(f"{PAGE}/export/summary.csv", summary_csv),
        Route(f"/api{PAGE}/stamp", stamp),
        Route(f"/api{PAGE}/{{tab}}", twin),
        Route(f"{PAGE}/{{tab}}", page),
    ]
