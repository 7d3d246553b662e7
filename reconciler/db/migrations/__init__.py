"""Alembic migrations of the reconciler's schema, shipped in the package.

The tool runs them itself (``reconciler db upgrade``); users need no alembic.ini. Developers
add a revision with ``alembic -c <(printf '[alembic]\\nscript_location=reconciler/db/migrations')
revision -m "..."`` or by copying the last file in ``versions/``.
"""
