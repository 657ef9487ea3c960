import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

django_application = get_asgi_application()

# Imported after the application, which has configured settings and logging.
from orchestrator.asgi_guards import BodyLimit  # noqa: E402
from orchestrator.auth import warn_if_open  # noqa: E402

application = BodyLimit(django_application)

warn_if_open()
