"""The worker project's URLconf: django-faust's views under ``faust/``."""

from django.urls import include, path

urlpatterns = [path("faust/", include("django_faust.urls"))]
