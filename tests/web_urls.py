"""A project URLconf that mounts django-faust's views, as a user would."""

from django.urls import include, path

urlpatterns = [path("faust/", include("django_faust.urls"))]
