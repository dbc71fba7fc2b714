"""Checkpoint epochs (a fresh checkpoint per model or PCA change) and cleanup of taken sources."""
