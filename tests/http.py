"""The JSON HTTP client tests use: the engine's own (`tokengine.api_client`)."""

from tokengine.api_client import call

__all__ = ["call"]
