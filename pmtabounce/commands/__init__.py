"""One module per `pmtabounce` command, each exposing a click command; cli.py registers them."""
