"""likeness: a self-hosted replica platform that speaks Tavus's v2 API."""

__version__ = "0.1.0"
