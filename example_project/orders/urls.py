from django.urls import path

from . import views

app_name = "orders"

urlpatterns = [
    path("", views.place_order, name="place"),
    path("counts/", views.counts, name="counts"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
