"""Alembic migrations of the reconciler's schema, shipped in the package.

The tool runs them itself (``reconciler db upgrade``, through ``reconciler.db.schema_version``);
users need no alembic.ini. To add a revision: copy the last file in ``versions/``, set its
``revision`` and ``down_revision``, write ``upgrade``/``downgrade``, change the models in
``reconciler/db/schema.py`` to match and append the id to ``REVISIONS`` in
``schema_version.py``. ``tests/db/test_migrations.py`` checks that the revisions build exactly
the models and that an upgrade keeps every row.
"""
