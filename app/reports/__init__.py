"""Reports on a shop's figures (a month summary for the chat; full reports come later)."""
