"""gunicorn settings for Kontak; every value can be overridden from the environment.

Defaults suit a small machine: a few gthread workers, bounded timeouts, the
timing lines and errors on stderr where `grep` and `log-summary` read them.
"""

import os
import sys

from dotenv import load_dotenv

load_dotenv()

from services.config import ConfigError, load_settings  # noqa: E402

try:
    _settings = load_settings()
except ConfigError as error:
    # One clear line naming the variable, before any worker starts.
    print(f"kontak: configuration error: {error}", file=sys.stderr)
    sys.exit(1)

bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{_settings['PORT']}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread, answering what gunicorn itself refuses with JSON and logging no raw request.
worker_class = "services.gunicorn_worker.JsonErrorWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# 0 = up to 1 MiB: over-long query strings reach Kontak and get its JSON 400s.
limit_request_line = 0
proc_name = "kontak"
# gunicorn 27's control socket lives at one fixed path per user; several Kontak
# servers (tests, benchmarks) on one machine would fight over it.
control_socket_disable = True


def worker_exit(server, worker):
    """Close this worker's pool and session so the backends see clean disconnects."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    for name in ("kontak.db", "kontak.convex"):
        if name in extensions:
            extensions[name].close()
