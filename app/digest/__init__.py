"""The morning digest: who needs attention today, built and pushed once per shop per day."""
