"""The dialer and the calls it places or answers (async)."""
