"""`make run`: the embedded default stack, started once and stopped together.

Starts what the configuration leaves to Kontak (embedded PostgreSQL when
DATABASE_URL is unset, the local Convex stand-in when CONVEX_SITE_URL is
unset), loads the demo data into both, then serves with gunicorn. Ctrl-C
stops everything this command started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psycopg
import requests
from dotenv import load_dotenv

from services.config import EMBEDDED_PG_DIR, PROJECT_ROOT, ConfigError, load_settings
from services.postgres.dataset import load_dataset
from services.postgres.migrations import upgrade
from tools.convex_standin import ConvexStandin
from tools.embedded_pg import EmbeddedPostgres, PortInUse, StartFailed

DEMO_DATA = PROJECT_ROOT / "contract" / "demo_data.json"
DEMO_WORKSPACE = "00000000-0000-4000-8000-000000000001"
SERVER_LOG = PROJECT_ROOT / ".data" / "gunicorn.log"
FOLLOWER_LOG = PROJECT_ROOT / ".data" / "follower.log"


def say(message: str) -> None:
    print(f"kontak: {message}", flush=True)


def prepare_database(url: str) -> None:
    """Schema always; the demo data when its workspace is missing (first run, or after `seed --reset`)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        upgrade(conn, load_settings()["DATABASE_SCHEMA"])
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM workspaces WHERE id = %s)", (DEMO_WORKSPACE,)).fetchone()[0]:
            load_dataset(conn, json.loads(DEMO_DATA.read_text(encoding="utf-8")))
            say("loaded the demo data into PostgreSQL")


def start_embedded_postgres(data_dir: Path, port: int) -> Callable[[], None] | None:
    """Start the embedded cluster unless it already runs; return how to stop it (None: not
    started here). A port held by another process, or a failed start, ends with one line."""
    postgres = EmbeddedPostgres(data_dir, port)
    running = postgres.is_running()
    try:
        postgres.start()  # when running: only checks that it runs on `port`
    except (PortInUse, StartFailed) as error:
        raise SystemExit(f"kontak: {error}") from None
    if running:
        return None
    say(f"started embedded PostgreSQL on 127.0.0.1:{port} (data in .data/)")
    return postgres.stop


def tee(lines: Iterable[str], path: Path) -> None:
    """gunicorn's output to the terminal and to a file `make log-summary` reads."""
    path.parent.mkdir(exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        for line in lines:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            log.flush()


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit("kontak: gunicorn did not start; see the lines above")


def print_curl(settings: dict) -> None:
    base = f"http://127.0.0.1:{settings['PORT']}"
    query = f"phone=%2B6281234567890&workspace_id={DEMO_WORKSPACE}"
    say(f"serving on {base}  (Ctrl-C stops everything; log also in .data/gunicorn.log)")
    print("\nTry the demo contact (the key is CRM_API_KEY in .env):\n")
    print(f"  curl -s -H \"x-api-key: $(grep ^CRM_API_KEY= .env | cut -d= -f2-)\" \\\n"
          f"    '{base}/api/contacts/by-phone?{query}'\n", flush=True)
    if settings.get("CONVEX_IS_STANDIN") is not None:
        print(f"  (and the same on Convex: {base}/api/contacts/by-phone-convex?{query})\n", flush=True)


def start_follower() -> Callable[[], None]:
    """`sync-convex --follow` beside the stand-in, so Convex stays equal to PostgreSQL whatever writes
    (docs/own-data.md §6); its lines go to the terminal and to .data/follower.log."""
    follower = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "sync-convex", "--follow"],
                                cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
    threading.Thread(target=tee, args=(follower.stdout, FOLLOWER_LOG), daemon=True).start()
    say("started the follower: Convex follows PostgreSQL (sync-convex --follow)")
    return lambda: (follower.terminate(), follower.wait(30))


def main() -> int:
    load_dotenv()
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"kontak: configuration error: {error}", file=sys.stderr)
        return 1
    stops = []
    gunicorn = None

    def stop_everything(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_everything)
    signal.signal(signal.SIGINT, stop_everything)
    try:
        if settings["DATABASE_IS_EMBEDDED"]:
            stop = start_embedded_postgres(EMBEDDED_PG_DIR, settings["EMBEDDED_PG_PORT"])
            if stop is not None:
                stops.append(stop)
        prepare_database(settings["DATABASE_URL"])
        if settings["CONVEX_IS_STANDIN"]:
            standin = ConvexStandin(api_key=settings["CRM_API_KEY"], data_file=DEMO_DATA,
                                    webhook_secret=settings["KAPSO_WEBHOOK_SECRET"])
            standin.start()
            stops.append(standin.stop)
            say(f"started the local Convex stand-in on {standin.url} with the demo data "
                "(its latency is not Convex's)")
            stops.append(start_follower())
        gunicorn = subprocess.Popen([sys.executable, "-m", "tools.serve"],
                                    cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=tee, args=(gunicorn.stdout, SERVER_LOG), daemon=True).start()
        stops.append(lambda: (gunicorn.terminate(), gunicorn.wait(30)))
        wait_until_serving(f"http://127.0.0.1:{settings['PORT']}/", gunicorn)
        print_curl(settings)
        return gunicorn.wait()
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        for stop in reversed(stops):
            try:
                stop()
            except Exception as error:  # keep stopping the rest
                print(f"kontak: while stopping: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
