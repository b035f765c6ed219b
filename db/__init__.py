"""Nurture's application database: ORM models, engines and Alembic migrations.

Shared by activities (the worker) and the HTTP API; never imported by workflows.
"""
