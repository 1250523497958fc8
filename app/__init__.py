"""Huitou (回头客): notice customers who are quietly leaving, and win them back."""
