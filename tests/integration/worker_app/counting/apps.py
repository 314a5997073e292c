from django.apps import AppConfig


class CountingConfig(AppConfig):
    name = "counting"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
