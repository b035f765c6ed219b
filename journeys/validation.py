"""Whole-journey validation: the graph and every template, all problems in one error.

Journey modules build their definition with `define_journey(...)`, so a journey is checked
when it is defined (at import), not when a lead first reaches a broken step.
"""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, nodes
from pydantic import ValidationError

from journeys.dsl import DEFER_GRAPH_CHECK, JourneyDefinition, graph_problems
from journeys.problems import DefinitionProblems
from journeys.rendering import (
    TEMPLATE_DIR,
    TEMPLATE_PARTS,
    TEMPLATE_VARIABLES,
    template_environment,
)

# Names Jinja2 provides itself, which templates may use freely.
_BUILTINS = {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop", "self", "super"}


class JourneyValidationError(DefinitionProblems):
    """A journey has problems; `problems` lists each, and the message names them all."""

    def __init__(self, journey: str, problems: list[str]) -> None:
        self.journey = journey
        super().__init__("journey", journey, problems)


def _source_problems(name: str, source: str) -> list[str]:
    """Undefined variables and unknown attributes of `lead`, `sender`, `links` in one file."""
    env = template_environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return [f"template {name}: syntax error on line {exc.lineno}: {exc.message}"]
    problems = []
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in tree.find_all(nodes.Name):
        if node.ctx != "load" or node.name in assigned or node.name in _BUILTINS:
            continue
        if node.name not in TEMPLATE_VARIABLES:
            problems.append(f"template {name} uses undefined variable {node.name!r}")
    for lookup in tree.find_all(nodes.Getattr):
        owner = lookup.node
        if isinstance(owner, nodes.Name) and owner.name in TEMPLATE_VARIABLES:
            if lookup.attr not in TEMPLATE_VARIABLES[owner.name]:
                problems.append(
                    f"template {name} uses undefined variable '{owner.name}.{lookup.attr}'"
                )
    return list(dict.fromkeys(problems))


def template_problems(template: str) -> list[str]:
    """Every problem of email template `template` (all three parts)."""
    problems = []
    for suffix in TEMPLATE_PARTS:
        path = TEMPLATE_DIR / f"{template}{suffix}"
        if not path.is_file():
            problems.append(f"template {template!r} has no {template}{suffix}")
            continue
        problems.extend(_source_problems(path.name, path.read_text()))
        try:
            env_template = template_environment().get_template(path.name)
        except TemplateError as exc:
            problems.append(f"template {path.name}: {exc}")
            continue
        # Layouts are templates too: check the files this one extends or includes.
        for ref in env_template.environment.parse(path.read_text()).find_all(
            (nodes.Extends, nodes.Include)
        ):
            target = getattr(ref, "template", None)  # both node kinds name a template
            if isinstance(target, nodes.Const):
                parent = TEMPLATE_DIR / target.value
                if not parent.is_file():
                    problems.append(f"template {path.name} extends missing {target.value}")
                else:
                    problems.extend(_source_problems(target.value, parent.read_text()))
    return list(dict.fromkeys(problems))


def journey_problems(definition: JourneyDefinition) -> list[str]:
    """The graph's problems and every template's, in one list."""
    problems = graph_problems(definition)
    for template in sorted(definition.templates()):
        problems.extend(template_problems(template))
    return list(dict.fromkeys(problems))


def define_journey(**fields: Any) -> JourneyDefinition:
    """Build and fully validate a journey; raises JourneyValidationError listing every problem."""
    name = str(fields.get("name", "?"))
    try:
        definition = JourneyDefinition.model_validate(fields, context={DEFER_GRAPH_CHECK: True})
    except ValidationError as exc:
        raise JourneyValidationError(
            name,
            [
                f"{'.'.join(str(p) for p in e['loc']) or 'journey'}: {e['msg']}"
                for e in exc.errors()
            ],
        ) from None
    problems = journey_problems(definition)
    if problems:
        raise JourneyValidationError(definition.name, problems)
    return definition
