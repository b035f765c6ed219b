"""Journeys as code: the DSL (`journeys.dsl`), the registry, the journey modules and templates.

`journeys.dsl` is pure pydantic and is what workflows import; template rendering lives in
`journeys.rendering` (Jinja2) and is used only by activities, the API and validation.
"""
