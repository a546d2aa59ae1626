from rest_framework import serializers

from bench.drf_peer.models import Note


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "title", "body", "tags", "created", "updated"]
