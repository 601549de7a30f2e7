"""Views: each a function that returns a matplotlib Figure of a run (or of plain arrays)."""
