"""URLs of the example project."""

from django.urls import include, path

urlpatterns = [
    path("orders/", include("orders.urls")),
]
