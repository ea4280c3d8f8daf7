"""gunicorn settings for Kontak; every value can be overridden from the environment.

This configuration alone, with no proxy in front, holds docs/contract.md §11:
gevent workers (a connection is a greenlet: slow and idle clients cost
almost nothing), request line, header and body limits answered in JSON, an
access log that cannot hold a phone, key or signature, and every setting
checked at start with one clear line.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from dotenv import load_dotenv

load_dotenv()

from services.config import ConfigError, load_server_settings, load_settings  # noqa: E402

try:
    _settings = load_settings(gunicorn_master=True)
    _server = load_server_settings()
except ConfigError as error:
    # One clear line naming the variable, before any worker starts.
    print(f"kontak: configuration error: {error}", file=sys.stderr)
    sys.exit(1)

# prometheus_client's multiprocess mode (docs/contract.md §15): each worker writes its values to files
# in this directory and /metrics adds them up. prometheus_client chooses its mode when first imported,
# so this is set here, in the master, before any worker imports the app (and after the settings
# are checked: a refused start leaves no directory behind). Unset: a fresh directory for
# this server alone (two servers on one machine never add up each other's values); set: emptied once
# at start (on_starting), since values a previous run left there would be counted again.
_made_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kontak-metrics-")

if os.environ.get("GUNICORN_THREADS"):
    print("kontak: GUNICORN_THREADS is ignored: each gevent worker serves GUNICORN_WORKER_CONNECTIONS "
          "connections", file=sys.stderr)

bind = _server["GUNICORN_BIND"] or f"127.0.0.1:{_settings['PORT']}"
workers = _server["WEB_CONCURRENCY"]
# gevent, answering what gunicorn itself refuses with JSON and logging no raw request.
worker_class = "services.gunicorn_worker.JsonErrorGeventWorker"
worker_connections = _server["GUNICORN_WORKER_CONNECTIONS"]
timeout = _server["GUNICORN_TIMEOUT"]
graceful_timeout = _server["GUNICORN_GRACEFUL_TIMEOUT"]
# Also the bound on receiving a request head (the gevent worker's keep-alive wait).
keepalive = _server["GUNICORN_KEEPALIVE"]
errorlog = "-"
loglevel = _server["GUNICORN_LOG_LEVEL"]
accesslog = _server["GUNICORN_ACCESS_LOG"]
# Whatever the access-log format asks for, no query string, key or signature reaches it.
logger_class = "services.access_log.SafeAccessLogger"
# Bounded and cheap to check: gunicorn's parser re-reads the line it is assembling, so an
# unbounded line costs time quadratic in its length. Over the limits: JSON 414 / 431.
# (Bodies: Flask's MAX_CONTENT_LENGTH, 1 MiB, JSON 413.)
limit_request_line = 8190
limit_request_fields = 50
limit_request_field_size = 8190
proc_name = "kontak"
# gunicorn 27's control socket lives at one fixed path per user; several Kontak
# servers (tests, benchmarks) on one machine would fight over it.
control_socket_disable = True


def on_starting(server):
    """Once per master (not on a reload, whose old workers are still counting): an empty metrics directory."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()


def child_exit(server, worker):
    """A worker ended, however (a SIGKILL too): its counters and histograms stay counted, its live gauges
    (kontak_breaker_open) go. prometheus_client is imported here only: the master imports no more than this."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory this configuration made for the server (one it was given stays)."""
    if _made_metrics_dir is not None:
        shutil.rmtree(_made_metrics_dir, ignore_errors=True)


def worker_exit(server, worker):
    """Close this worker's pool and session so the backends see clean disconnects."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    for name in ("kontak.db", "kontak.convex"):
        if name in extensions:
            extensions[name].close()
