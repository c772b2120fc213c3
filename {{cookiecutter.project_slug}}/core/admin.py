from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from core.login_throttle import ThrottledAdminAuthenticationForm
from core.models import ApiToken, User

admin.site.register(User, UserAdmin)
# Says "too many failed logins" when core.login_throttle refused the login.
admin.site.login_form = ThrottledAdminAuthenticationForm


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at")
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "created_at")

    def has_add_permission(self, request):
        # The raw token is shown once, at creation: use `manage.py create_api_token`.
        return False
