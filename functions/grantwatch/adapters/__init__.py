"""Adapters to AWS services behind small protocols: the table, the rejected-event queue."""
