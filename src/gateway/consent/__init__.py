"""The compliance engine: pure rules that decide whether a number may be called now."""
