"""`python -m tools.serve [APP] [gunicorn options…]`: Kontak's settings checked, then gunicorn.

The same as `gunicorn -c gunicorn.conf.py wsgi:app` (which checks the same
settings), except for one case only a launcher can catch: gunicorn reads
WEB_CONCURRENCY while it is being imported, before any configuration file,
so a value that is not a number ends there in a traceback. Here every bad
setting ends in one line, and gunicorn replaces this process (same pid).
"""

from __future__ import annotations

import os
import sys

from dotenv import load_dotenv

from services.config import PROJECT_ROOT, ConfigError, load_server_settings, load_settings


def main(argv: list[str]) -> int:
    load_dotenv()
    try:
        load_settings()
        load_server_settings()
    except ConfigError as error:
        print(f"kontak: configuration error: {error}", file=sys.stderr)
        return 1
    app = argv[0] if argv and not argv[0].startswith("-") else "wsgi:app"
    options = argv[1:] if argv and not argv[0].startswith("-") else argv
    os.chdir(PROJECT_ROOT)
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *options, app])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
