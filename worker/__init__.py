"""The consumer and the apply engine: batches of bounce and complaint records off the work queue, decided
(plan.py, pure) and applied to IEM's tables exactly once through store/ (apply.py)."""
