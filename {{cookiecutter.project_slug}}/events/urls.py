from django.urls import path

from events import views

app_name = "events"
urlpatterns = [
    path("", views.stream, name="stream"),
    path("publish/", views.publish, name="publish"),
]
