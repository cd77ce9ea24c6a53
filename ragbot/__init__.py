"""ragbot: answers questions about a health article with cited, verbatim sentences."""

__version__ = "0.1.0"
