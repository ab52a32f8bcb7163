"""The turn path's SQL for SQLite, as text: opening a workspace and running a turn import no SQLAlchemy.

Generated from ``store/statements.py`` (the Core definitions over ``store/schema.py``);
``tests/workspace/test_store.py`` fails if the two differ. The turn's own statements take
positional parameters (``?``), in the order of ``schema.MESSAGE_COLUMNS`` and
``schema.TURN_USAGE_COLUMNS`` (``INSERT_USAGE``: ``schema.USAGE_COLUMNS``, a row outside any
turn); the reads (``statements.READS``) take named ones (``:agent_id``).
"""

SYNC_CHECK = (
    "SELECT (SELECT revision.config \nFROM revision \nWHERE revision.id = 1) AS anon_1, "
    "(SELECT max(messages.id) AS max_1 \nFROM messages \nWHERE messages.agent_id = ?) AS anon_2"
)
INSERT_MESSAGE = "INSERT INTO messages (agent_id, role, body, status, created_at) VALUES (?, ?, ?, ?, ?)"
INSERT_USAGE = (
    "INSERT INTO usage (at, session, agent_id, provider, model, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens, cost_usd, api_cost_usd, latency_s, outcome, streamed, usage_state, "
    "price) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_TURN_USAGE = (
    "INSERT INTO usage (at, session, agent_id, provider, model, input_tokens, output_tokens, cache_read_tokens, "
    "cache_write_tokens, reasoning_tokens, cost_usd, api_cost_usd, latency_s, outcome, streamed, usage_state, "
    "price, attempt, fallback_from, turn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# --- the reads of opening a workspace and preparing a turn (statements.READS) ----------------

CONFIG_REVISION = "SELECT revision.config \nFROM revision \nWHERE revision.id = 1"
SETTINGS = 'SELECT settings."key", settings.value \nFROM settings'
PROVIDERS = "SELECT providers.id, providers.enabled \nFROM providers"
PROVIDER_SETTINGS = (
    "SELECT provider_settings.provider, provider_settings.name, provider_settings.value \nFROM provider_settings"
)
CUSTOM_ENDPOINTS = (
    "SELECT custom_endpoints.provider_id, custom_endpoints.name, custom_endpoints.base_url, "
    "custom_endpoints.model_id, custom_endpoints.display_name, custom_endpoints.context_window, "
    "custom_endpoints.max_output_tokens, custom_endpoints.tools, custom_endpoints.vision, custom_endpoints.has_key "
    "\nFROM custom_endpoints"
)
AGENTS = (
    "SELECT agents.id, agents.name, agents.system, agents.provider, agents.model, agents.effort \nFROM agents "
    "\nWHERE agents.deleted_at = 0 ORDER BY agents.id"
)
AGENT_BY_NAME = (
    "SELECT agents.id, agents.name, agents.system, agents.provider, agents.model, agents.effort \nFROM agents "
    "\nWHERE agents.deleted_at = 0 AND agents.name = :name ORDER BY agents.id"
)
TRANSCRIPT = (
    "SELECT messages.id, CAST(messages.body AS TEXT) AS body, messages.status, messages.created_at \nFROM messages "
    "\nWHERE messages.agent_id = :agent_id ORDER BY messages.id"
)
TRANSCRIPT_OK = (
    "SELECT messages.id, CAST(messages.body AS TEXT) AS body, messages.status, messages.created_at \nFROM messages "
    "\nWHERE messages.agent_id = :agent_id AND messages.status = 'ok' ORDER BY messages.id"
)
TRANSCRIPT_NEWEST = (
    "SELECT messages.id, CAST(messages.body AS TEXT) AS body, messages.status, messages.created_at \nFROM messages "
    "\nWHERE messages.agent_id = :agent_id ORDER BY messages.id DESC\n LIMIT :limit OFFSET 0"
)
TRANSCRIPT_OK_NEWEST = (
    "SELECT messages.id, CAST(messages.body AS TEXT) AS body, messages.status, messages.created_at \nFROM messages "
    "\nWHERE messages.agent_id = :agent_id AND messages.status = 'ok' ORDER BY messages.id DESC\n LIMIT :limit "
    "OFFSET 0"
)
MESSAGE_COUNTS = (
    "SELECT messages.status, count(*) AS count_1 \nFROM messages \nWHERE messages.agent_id = :agent_id GROUP BY "
    "messages.status"
)
SPEND = (
    "SELECT usage.provider, coalesce(sum(usage.cost_usd), 0.0) AS coalesce_1, coalesce(sum(CASE WHEN (usage.outcome "
    "= 'ok' AND usage.api_cost_usd IS NULL) THEN 1 ELSE 0 END), 0) AS coalesce_2 \nFROM usage \nWHERE usage.at >= "
    ":start GROUP BY usage.provider"
)
SPEND_AGENT = (
    "SELECT usage.provider, coalesce(sum(usage.cost_usd), 0.0) AS coalesce_1, coalesce(sum(CASE WHEN (usage.outcome "
    "= 'ok' AND usage.api_cost_usd IS NULL) THEN 1 ELSE 0 END), 0) AS coalesce_2 \nFROM usage \nWHERE usage.at >= "
    ":start AND usage.agent_id = :agent_id GROUP BY usage.provider"
)
INSERT_TRANSITION = (
    "INSERT INTO health_transitions (at, provider, state_from, state_to, detail) VALUES (:at, :provider, "
    ":state_from, :state_to, :detail)"
)

#: ``custom_endpoints``' columns in table order, and those of them that are Boolean (sqlite3
#: hands those back as 0 / 1, SQLAlchemy as bool)
CUSTOM_ENDPOINT_COLUMNS = ("provider_id", "name", "base_url", "model_id", "display_name", "context_window",
                           "max_output_tokens", "tools", "vision", "has_key")
CUSTOM_ENDPOINT_FLAGS = ("tools", "vision", "has_key")
