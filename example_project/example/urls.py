"""URLs of the example project.

``/`` leads to the live dashboard; ``/faust/`` has django-faust's views
(``stats/``, ``tables/``, ``health/``, ...) and every ``@app.page`` of the
project (``orders/views.py``'s ``count/<account>/``).
"""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="orders:dashboard"), name="home"),
    path("admin/", admin.site.urls),
    path("orders/", include("orders.urls")),
    path("faust/", include("django_faust.urls")),
]
