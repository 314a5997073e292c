"""The App and the project's lazily built instance."""

from .base import App, CommandSpec, TaskSpec
from .project import get_project_app, project_app

__all__ = ["App", "CommandSpec", "TaskSpec", "get_project_app", "project_app"]
