"""What gunicorn serves: `gunicorn -c gunicorn.conf.py wsgi:app`."""

import sys

from app import create_app
from services.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    print(f"kontak: configuration error: {error}", file=sys.stderr)
    sys.exit(1)
