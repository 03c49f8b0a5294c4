"""The MySQL side: connections, IEM's tables, our own tables (ledger, guard, audit), migrations, undo's SQL."""
