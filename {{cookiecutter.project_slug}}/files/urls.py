from django.urls import path

from files import views

urlpatterns = [
    path("<path:path>", views.serve, name="file"),
]
