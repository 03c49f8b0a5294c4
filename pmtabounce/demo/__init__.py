"""`pmtabounce demo` and what it stands on: the world generator, its accounting rows, IEM's fixture tables."""
