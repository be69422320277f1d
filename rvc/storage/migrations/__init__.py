"""Alembic migrations of the storage layer; ``rvc.storage.database.migrate`` runs them (no alembic.ini)."""
