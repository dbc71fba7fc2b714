"""Data-subject rights and privacy checks: `fruits subject`, `fruits audit-pii` (docs/gdpr.md)."""
