"""The streaming query: the manifest source, each micro-batch, and the driver loop that runs it."""
