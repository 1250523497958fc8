"""Pure churn-risk math: no I/O, no database, no clock. History in, assessment out."""
