"""Nurture's entry points: the HTTP API, the CLI, the Temporal client and dev-stack provisioning."""
