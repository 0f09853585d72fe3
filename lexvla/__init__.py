"""Command-line entry point of the LexVLA search project (``lexvla --help``)."""
