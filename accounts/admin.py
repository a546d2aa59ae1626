from django.contrib import admin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "created", "expires"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    readonly_fields = ["user", "created"]
    exclude = ["key_hash"]

    def has_add_permission(self, request):
        return False  # a token's raw value is shown once, through the API
