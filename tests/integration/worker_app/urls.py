from counting import views
from django.urls import path

urlpatterns = [
    path("events/", views.send_event),
    path("async-events/", views.send_event_async),
    path("async-ask/<str:word>/", views.ask_async),
]
