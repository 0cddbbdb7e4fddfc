"""pulse-tui: operator console, server and plugin SDK for Pulse."""

__version__ = "0.1.0"
