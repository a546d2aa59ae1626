"""The benchmark's DRF peer: the notes API the way a cookiecutter-django project would write it.

A Django REST framework `ModelViewSet` with a `ModelSerializer`, DRF's token authentication and
cursor pagination, Django's default middleware, on the app's own tables (`notes_note`,
`auth_user`), served by gunicorn as cookiecutter-django's production start script serves it
(see docs/performance.md). A reference to measure the app against: the app never imports it.
"""
