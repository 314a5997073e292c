from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self):
        from . import signals  # noqa: F401  (connects the publishing receivers)
