from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import path, reverse
from django.utils.html import format_html

from filestore.downloads import download_response

from .models import Attachment, Note


class AttachmentInline(admin.TabularInline):
    """A note's attachments, read-only: files come and go through the API."""

    model = Attachment
    fields = readonly_fields = ("name", "content_type", "size", "sha256", "created", "download")
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="file")
    def download(self, attachment: Attachment) -> str:
        url = reverse("admin:notes_note_attachment", args=[attachment.note_id, attachment.pk])
        return format_html('<a href="{}">download</a>', url)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "created", "updated"]
    list_select_related = ["owner"]
    list_filter = ["created"]
    search_fields = ["title", "owner__username"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created", "updated"]

    def get_inlines(self, request, obj):
        # A note being added has no attachments yet (they come through the API), so its form
        # carries no attachment formset either.
        return [AttachmentInline] if obj is not None else []

    def get_urls(self):
        download = self.admin_site.admin_view(self.attachment_download)
        return [
            path(
                "<int:note_id>/attachments/<int:attachment_id>/",
                download,
                name="notes_note_attachment",
            ),
            *super().get_urls(),
        ]

    def attachment_download(self, request, note_id: int, attachment_id: int):
        """The file, for staff who may view notes: the same answer as the API's download."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        attachment = Attachment.objects.filter(note_id=note_id, pk=attachment_id).first()
        if attachment is None:
            raise Http404
        return download_response(
            request,
            name=attachment.file.name or "",  # every row names a file
            sha256=attachment.sha256,
            size=attachment.size,
            filename=attachment.name,
            content_type=attachment.content_type,
        )
