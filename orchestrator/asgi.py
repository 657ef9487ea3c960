import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

application = get_asgi_application()

# Imported after the application, which has configured settings and logging.
from orchestrator.auth import warn_if_open  # noqa: E402

warn_if_open()
