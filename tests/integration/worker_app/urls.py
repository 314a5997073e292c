"""The worker project's URLconf: views that send, and ours under ``faust/``."""

from counting import views
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("events/", views.send_event),
    path("async-events/", views.send_event_async),
    path("async-ask/<str:word>/", views.ask_async),
    path("faust/", include("django_faust.urls")),
    path("admin/", admin.site.urls),
]
