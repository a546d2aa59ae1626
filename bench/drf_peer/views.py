from django.contrib.postgres.search import SearchQuery, SearchVector
from rest_framework import viewsets

from bench.drf_peer.models import Note
from bench.drf_peer.serializers import NoteSerializer


class NoteViewSet(viewsets.ModelViewSet):
    serializer_class = NoteSerializer

    def get_queryset(self):
        notes = Note.objects.filter(owner=self.request.user)
        if query := self.request.query_params.get("q"):
            # The app's search document, so that its GIN index answers here too.
            document = SearchVector("title", "body", config="english")
            found = SearchQuery(query, config="english", search_type="websearch")
            notes = notes.alias(document=document).filter(document=found)
        return notes

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)
