from django.urls import path

from tasks import views

app_name = "tasks"
urlpatterns = [
    path("survey/", views.enqueue_survey, name="survey"),
    path("<uuid:result_id>/", views.detail, name="detail"),
]
