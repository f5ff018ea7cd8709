"""persister: results stream -> SQL (validate, upsert in one transaction per batch, commit, then ack).

See ``persister/README.md`` for the phases, the failure handling and the tables.
"""
