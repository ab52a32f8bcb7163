"""The turn path's SQL for SQLite, as text: a turn imports no SQLAlchemy.

Generated from ``store/statements.py`` (the Core definitions over ``store/schema.py``);
``tests/store/test_turn_sql.py`` fails if the two differ. Parameters are positional (``?``),
in the order of ``schema.MESSAGE_COLUMNS`` and ``schema.USAGE_COLUMNS``.
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
