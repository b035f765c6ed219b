"""Provisioning of the dev stack: the Temporal CLI/dev server and a PostgreSQL database.

One module per service, shared by the CLI (`nurture demo`, `nurture provision`), the tests
and CI, so that all three set things up the same way.
"""
