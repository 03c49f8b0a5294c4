"""`pmtabounce dlq`: the dead-letter tool (the click group is in command.py)."""
