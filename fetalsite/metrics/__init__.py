"""Counters the database does not otherwise hold (uploads refused, by reason), kept in one table so that every web
host and worker adds to the same figure. /metrics (fetalsite.metrics_endpoint, the composition root) reads them."""
