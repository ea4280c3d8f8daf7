"""Kontak: the contact-context API for WhatsApp sales bots (application factory)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from dotenv import load_dotenv
from flask import Flask

from services.config import load_settings


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the app from `env` (default: the process environment plus `.env`).

    Tests pass their own `env`, so they configure Kontak exactly as a user does.
    """
    if env is None:
        load_dotenv()
        env = os.environ
    app = Flask(__name__)
    app.config.update(load_settings(env))
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.json.sort_keys = False  # SPEC section 3 fixes the key order

    from blueprints import convex_contacts, errors, health, kapso_webhook, openapi, security, supabase_contacts
    from commands import compare, db, keys, log_summary, seed, sync_convex
    from services import api_keys, convex_client, postgres, timing

    errors.init_app(app)
    security.init_app(app)
    timing.init_app(app)
    postgres.init_app(app)
    convex_client.init_app(app)
    api_keys.init_app(app)
    app.register_blueprint(supabase_contacts.bp)
    app.register_blueprint(convex_contacts.bp)
    app.register_blueprint(kapso_webhook.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    seed.init_app(app)
    compare.init_app(app)
    log_summary.init_app(app)
    db.init_app(app)
    sync_convex.init_app(app)
    keys.init_app(app)
    return app
