"""The fruit classifier's training and app export (runs beside the stream, never on the cluster)."""
