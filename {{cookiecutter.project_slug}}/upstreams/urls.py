from django.urls import path

from upstreams import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
]
