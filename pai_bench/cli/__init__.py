"""The command line: ``parser`` (arguments only) and ``commands`` (arguments -> library calls)."""
