"""``manage.py faust agents|models|model``: what the project declares."""

from __future__ import annotations

import click

from .base import get_app, json_option, print_table


@click.command()
@json_option
def agents(as_json: bool) -> None:
    """List the project's agents and the channel each reads."""
    app = get_app()
    rows = []
    for name, agent in sorted(app.agents.items()):
        channel = agent.channel
        source = ", ".join(sorted(channel.topic_names)) or "<local channel>"
        first_line = (agent.help or "").strip().splitlines()
        rows.append(
            [
                "@" + agent.shortlabel,
                name,
                source,
                "per partition" if agent.isolated_partitions else agent.concurrency,
                first_line[0] if first_line else "",
            ]
        )
    print_table(["Name", "Path", "Topic", "Concurrency", "Help"], rows, as_json=as_json)


@click.command()
@json_option
def models(as_json: bool) -> None:
    """List the Record models the project defines."""
    from ..models import registry

    rows = []
    for namespace, model in sorted(registry.items()):
        doc = (model.__doc__ or "").strip().splitlines()
        rows.append([namespace, len(_fields(model)), doc[0] if doc else ""])
    print_table(["Model", "Fields", "Help"], rows, as_json=as_json)


@click.command()
@click.argument("name")
@json_option
def model(name: str, as_json: bool) -> None:
    """Show the fields of one model (by namespace or class name)."""
    from ..models import registry

    matches = [
        m for ns, m in registry.items() if ns == name or ns.rsplit(".", 1)[-1] == name
    ]
    if not matches:
        raise click.BadParameter(
            f"No model named {name!r}. Try 'models' for the list.", param_hint="NAME"
        )
    if len(matches) > 1:
        raise click.BadParameter(
            f"{name!r} matches several models; give the full namespace.",
            param_hint="NAME",
        )
    rows = []
    for field in _fields(matches[0]):
        default = "" if field.required else repr(field.default)
        rows.append([field.field, _type_name(field.type), default])
    print_table(["Field", "Type", "Default"], rows, as_json=as_json)


def _fields(model: type) -> list:
    return list(model._options.fields.values())  # type: ignore[attr-defined]


def _type_name(typ: object) -> str:
    name = getattr(typ, "__name__", None)
    return (
        name
        if name and not str(typ).startswith(("typing.", "list[", "dict["))
        else str(typ).replace("typing.", "")
    )
