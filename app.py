"""Kontak: the contact-context API for WhatsApp sales bots (application factory)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from dotenv import load_dotenv
from flask import Flask

from services.config import load_settings
from services.contract import limits


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the app from `env` (default: the process environment plus `.env`).

    Tests pass their own `env`, so they configure Kontak exactly as a user does.
    """
    if env is None:
        load_dotenv()
        env = os.environ
    app = Flask(__name__)
    app.config.update(load_settings(env))
    app.config["MAX_CONTENT_LENGTH"] = limits().max_body_bytes  # contract/limits.json: 413 above it
    app.json.sort_keys = False  # docs/contract.md §3 fixes the key order

    import commands
    import hooks
    from blueprints import convex_contacts, health, kapso_webhook, openapi, supabase_contacts, verdict
    from blueprints import metrics as metrics_blueprint
    from services import api_keys
    from services.convex import client as convex_client
    from services.postgres import pool as postgres_pool

    hooks.init_app(app)  # errors, security headers, timing: before the blueprints (see hooks/)
    postgres_pool.init_app(app)
    convex_client.init_app(app)
    api_keys.init_app(app)
    app.register_blueprint(supabase_contacts.bp)
    app.register_blueprint(convex_contacts.bp)
    app.register_blueprint(kapso_webhook.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(verdict.bp)  # docs/contract.md §15: GET /verdict, HTML behind the operator key
    app.register_blueprint(metrics_blueprint.bp)  # docs/contract.md §15; also METRICS on or off for recording
    commands.init_app(app)
    return app
