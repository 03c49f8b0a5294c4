"""Consumes bounce records and applies them to IEM's tables, exactly once."""
