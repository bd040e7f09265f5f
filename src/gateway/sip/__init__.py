"""SIP signalling (RFC 3261): a sans-IO user agent core and its asyncio transports."""
