"""The benchmark's django-bolt peer: the notes API as a django-bolt project would write it.

Async handlers on django-bolt's Actix server with Django's async ORM, checking the bearer token in
the database (the app's own `ApiToken` model and hash, one query per request),
on the app's tables (`notes_note`, `accounts_apitoken`, `auth_user`), served by its own
`manage.py runbolt` with one process per core. A reference to measure the app against: the app
never imports it.
"""
