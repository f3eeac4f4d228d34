"""Persistence: SQLAlchemy 2 tables, repositories that take and return model objects, and
Alembic migrations. SQLite by default, PostgreSQL in production; the same tests run on both."""
