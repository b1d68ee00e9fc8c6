"""Claims sessions: the numbered session files, their comparison, expected failures and CSV export."""
