"""Plumbing every app shares: the API's base views, filters, errors and idempotency (docs/architecture.md).

The lowest Django layer: it imports no app of this project."""
