"""The management API (aiohttp)."""
