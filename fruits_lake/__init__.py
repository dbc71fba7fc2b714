"""The feature lake's table layer: the Iceberg catalog and the features/errors tables (contract v2)."""
