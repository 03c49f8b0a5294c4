"""pmtabounce: PowerMTA bounce logs into Interspire Email Marketer, exactly once."""

__version__ = "0.1.0"
