"""Reports: what a person reads after a run (a Markdown summary now; the HTML site comes later)."""
