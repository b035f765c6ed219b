"""Event types as code: the names (`names`), the built-in types' property models
(`builtin`) and the custom types (`catalog`), all registered in `journeys.event_types`.

Deliberately empty: `journeys.dsl` imports `journeys.events.names`, so this package must
not import the registry (which imports the DSL) when it loads.
"""
