"""Activities: every effect in the world (email, database, CRM), one module per effect.

Keep this file empty of imports: workflows import `activities.contracts`, which must not
pull SQLAlchemy, Jinja2 or any I/O library into the workflow sandbox.
"""
