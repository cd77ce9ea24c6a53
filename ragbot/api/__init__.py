"""The HTTP API: `create_app(settings, pipeline)`."""

from ragbot.api.app import create_app

__all__ = ["create_app"]
