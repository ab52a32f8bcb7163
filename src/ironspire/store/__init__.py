"""The workspace's persistent state: one store owns every SQL statement (see ``store.store``).

Layout: ``schema`` (Core tables), ``migrations`` (Alembic), ``store`` (the Store: configuration,
agents, history, ledger queries, backup), ``sqlite`` (the SQLite engine's hooks and turn log),
``sql`` (the turn path's precompiled SQL, checked against ``statements``), ``locks``;
``engines`` (which database a URL names, its engine and schema check), ``types`` (columns that
read the same on every engine), ``postgres`` (advisory locks, ledger partitions, the turn log there).
"""
