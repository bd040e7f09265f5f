"""Campaigns: what a campaign is and which contact is due when (pure)."""
