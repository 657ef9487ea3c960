import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

application = get_wsgi_application()

from orchestrator.middleware.auth import warn_if_open  # noqa: E402

warn_if_open()
