"""Outreach: the three-tier ladder (tiers.py) and the scripts staff read and send (render.py)."""
