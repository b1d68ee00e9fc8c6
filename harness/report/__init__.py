"""The report: run records and claim figures described, rendered as Markdown, JSON and figures."""
