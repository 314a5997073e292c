"""Agents discovered from an installed app, as a user would write them."""

from django_faust import app

greetings = app.topic("tests-greetings", value_type=str)
seen: list[str] = []


@app.agent(greetings)
async def greet(stream):
    """Collect greetings (used by the autodiscovery tests)."""
    async for name in stream:
        seen.append(name)
        yield f"hello {name}"
