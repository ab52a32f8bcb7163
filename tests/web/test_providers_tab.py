"""Settings > Providers through the browser's requests: keys write-only into the credential store,
base-URL overrides, enable/disable, checks with their dots, Add Custom Endpoint, the default."""

from __future__ import annotations

from typing import Any

import pytest

from web.conftest import Browser
from workspace.loopback import Server, serving

KEY = "sk-web-test-secret-key-0123456789"


async def card_health(web: Browser, pid: str) -> dict[str, Any]:
    records = await web.api("/api/providers")
    found: dict[str, Any] = next(r for r in records if r["id"] == pid)
    return found


async def test_a_key_is_stored_in_the_credential_store_and_never_shown_again(web: Browser) -> None:
    with serving(Server("oa")) as (oa,):
        web.ws.set_provider_setting("openai", "base_url", oa.url + "/v1")
        saved = await web.post("/settings/providers/openai/credentials/api_key", {"value": KEY})
        assert saved.status_code == 303 and "#card-openai" in saved.headers["location"]
        assert web.ws.credentials.get("openai", "api_key") == KEY
        page = await web.get(saved.headers["location"])
        assert KEY not in page.text and "sk-…6789" in page.text  # masked hint only
        record = await card_health(web, "openai")
        assert record["credential"]["source"] == "keychain"
        assert record["health"]["state"] == "reachable"  # checked at once after the change
    removed = await web.post("/settings/providers/openai/credentials/api_key/remove")
    assert removed.status_code == 303 and web.ws.credentials.get("openai", "api_key") is None
    assert (await card_health(web, "openai"))["credential"]["source"] == "missing"


async def test_empty_or_unknown_credential_fields_are_refused(web: Browser) -> None:
    empty = await web.post("/settings/providers/openai/credentials/api_key", {"value": "  "})
    assert empty.status_code == 400 and "nothing was stored" in empty.text
    unknown = await web.post("/settings/providers/openai/credentials/password", {"value": "x"})
    assert unknown.status_code == 400 and "no credential field" in unknown.text and "password" in unknown.text
    assert web.ws.credentials.get("openai", "api_key") is None


async def test_every_field_of_bedrock_and_azure_can_be_set(web: Browser) -> None:
    for field, value in (("access_key_id", "AKIAWEBTEST0000001"), ("secret_access_key", "bedrock-secret-xyz-123"),
                         ("session_token", "bedrock-session-token-1"), ("region", "eu-west-1")):
        assert (await web.post(f"/settings/providers/bedrock/credentials/{field}", {"value": value})).status_code == 303
    assert web.ws.credentials.get("bedrock", "secret_access_key") == "bedrock-secret-xyz-123"
    assert web.ws.provider_settings("bedrock")["region"] == "eu-west-1"
    for field, value in (("api_key", "azure-key-0123456789"), ("base_url", "https://me.openai.azure.com"),
                         ("deployment", "gpt4o"), ("api_version", "2024-10-21")):
        assert (await web.post(f"/settings/providers/azure-openai/credentials/{field}", {"value": value})).status_code \
            == 303
    assert web.ws.provider_settings("azure-openai") == {"base_url": "https://me.openai.azure.com",
                                                       "deployment": "gpt4o", "api_version": "2024-10-21"}
    page = (await web.get("/settings/providers")).text
    assert "bedrock-secret-xyz-123" not in page and "azure-key-0123456789" not in page


@pytest.mark.parametrize(("probe", "state", "dot"), [(200, "reachable", "green"), (401, "invalid_key", "red"),
                                                    (429, "rate_limited", "yellow")])
async def test_checks_turn_the_dot_green_red_or_yellow(web: Browser, probe: int, state: str, dot: str) -> None:
    with serving(Server("m", probe_status=probe)) as (server,):
        web.ws.set_provider_setting("mistral", "base_url", server.url + "/v1")
        web.ws.credentials.set("mistral", "api_key", "mistral-key-000000")
        checked = await web.post("/settings/providers/mistral/check", json_answer=True)
        assert checked.status_code == 200 and checked.json()["state"] == state
        page = (await web.get("/settings/providers")).text
        assert f'<span class="dot {dot}" data-dot="mistral" data-state="{state}"' in page
        if state == "rate_limited":
            assert 'data-until="mistral">until ' in page  # the reset time is shown
        everything = await web.post("/settings/providers/check", json_answer=True)
        assert {r["provider"]: r["state"] for r in everything.json()}["mistral"] == state


async def test_base_url_override_and_bad_urls(web: Browser) -> None:
    ok = await web.post("/settings/providers/groq/settings", {"name": "base_url", "value": "http://127.0.0.1:9/v1"})
    assert ok.status_code == 303 and web.ws.provider_settings("groq")["base_url"] == "http://127.0.0.1:9/v1"
    for bad in ("not a url", "ftp://x/v1", "http://"):
        refused = await web.post("/settings/providers/groq/settings", {"name": "base_url", "value": bad})
        assert refused.status_code == 400 and "not a valid URL" in refused.text, bad
    assert web.ws.provider_settings("groq")["base_url"] == "http://127.0.0.1:9/v1"
    cleared = await web.post("/settings/providers/groq/settings", {"name": "base_url", "value": ""})
    assert cleared.status_code == 303 and "base_url" not in web.ws.provider_settings("groq")


async def test_disable_and_enable_reset_the_providers_state(web: Browser) -> None:
    web.ws.health.observe("deepseek", None, 0.1)
    assert (await card_health(web, "deepseek"))["health"]["state"] == "reachable"
    await web.post("/settings/providers/deepseek/disable")
    record = await card_health(web, "deepseek")
    assert not record["enabled"] and record["health"]["state"] == "disabled"
    await web.post("/settings/providers/deepseek/enable")
    record = await card_health(web, "deepseek")
    assert record["enabled"] and record["health"]["state"] != "reachable"  # forgotten: checked afresh


async def test_a_custom_endpoint_is_saved_and_checked_at_once(web: Browser) -> None:
    with serving(Server("box")) as (box,):
        form = {"name": "my box", "base_url": box.url + "/v1", "model_id": "box-1", "display_name": "Box One",
                "context_window": "8192", "tools": "1", "api_key": "box-secret-key-99"}
        saved = await web.post("/settings/providers/custom", form)
        assert saved.status_code == 303 and saved.headers["location"].endswith("#card-custom-my-box")
        record = await card_health(web, "custom-my-box")
        assert record["health"]["state"] == "reachable" and record["group"] == "custom"
        assert web.ws.credentials.get("custom-my-box", "api_key") == "box-secret-key-99"
        model = (await web.api("/api/models?provider=custom-my-box"))[0]
        assert (model["id"], model["context_window"], model["tools"], model["vision"]) == ("box-1", 8192, True, False)
        page = (await web.get("/settings/providers")).text
        assert 'id="card-custom-my-box"' in page and "box-secret-key-99" not in page


@pytest.mark.parametrize(("change", "words"), [
    ({"base_url": "htp//broken"}, "not a valid URL"),
    ({"model_id": "  "}, "model id is empty"),
    ({"name": "taken"}, "already exists"),
    ({"context_window": "-5"}, "positive number of tokens"),
    ({"name": ""}, "needs a name"),
])
async def test_bad_custom_endpoints_are_refused_inline_and_save_nothing(
    web: Browser, change: dict[str, str], words: str
) -> None:
    from ironspire.catalog.providers import CustomEndpoint

    web.ws.add_custom_endpoint(CustomEndpoint("taken", "http://127.0.0.1:9/v1", "m"))
    before = web.ws.provider_ids()
    form = {"name": "fresh", "base_url": "http://127.0.0.1:9/v1", "model_id": "m1", "api_key": "never-kept-key-1",
            **change}
    refused = await web.post("/settings/providers/custom", form)
    assert refused.status_code == 400
    assert words in refused.text and 'id="custom-error"' in refused.text
    assert 'value="never-kept-key-1"' not in refused.text  # the key is not echoed back into the form
    assert web.ws.provider_ids() == before
    assert web.ws.credentials.get("custom-fresh", "api_key") is None


async def test_the_default_picker(web: Browser) -> None:
    saved = await web.post("/settings/providers/default", {"route": "openai|gpt-4.1"})
    assert saved.status_code == 303 and web.ws.default == ("openai", "gpt-4.1")
    assert await web.api("/api/default") == {"provider": "openai", "model": "gpt-4.1"}
    for bad in ("openai|no-such-model", "nobody|x", "garbage"):
        refused = await web.post("/settings/providers/default", {"route": bad})
        assert refused.status_code == 400, bad
    assert web.ws.default == ("openai", "gpt-4.1")
