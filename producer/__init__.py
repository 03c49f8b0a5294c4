"""Watches PowerMTA's move-to directory and publishes every bounce with publisher confirms."""
