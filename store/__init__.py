"""The MySQL side, and the only place PyMySQL is met: the one way in (database.py: Database, its ONE_SHOT and
WaitItOut policies; db.py: connections, Tables, Cursor, error translation), IEM's tables (iem.py), our own
tables (ledger.py with its migrations, guard_store.py, audit.py), setup's migrations (migrate.py), undo's SQL."""
