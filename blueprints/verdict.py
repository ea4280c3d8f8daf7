"""GET /verdict (docs/contract.md §15): the live verdict page, behind CRM_API_KEY. HTTP only: the figures
are services/verdict_page.py's, the HTML services/verdict_html.py's. Not under /api/: no timing line."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from services import metrics
from services.auth import check_operator_key
from services.errors import Unauthorized
from services.verdict_html import CSS_HASH, render, render_off
from services.verdict_page import page_model, read_figures

bp = Blueprint("verdict", __name__)
# A browser opening the page prompts for the key (or uses http://user:KEY@host/verdict) only when a 401
# names a Basic realm.
CHALLENGE = 'Basic realm="Kontak verdict", charset="UTF-8"'
# hooks/security.py's `default-src 'none'` fits JSON but blocks the page's one style block: this page's
# policy allows that block by its hash and still nothing else (no script, image, font, frame or form).
POLICY = f"default-src 'none'; style-src '{CSS_HASH}'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


@bp.get("/verdict")
def verdict() -> Response:
    try:
        check_operator_key(request.headers, current_app.config["CRM_API_KEY"])
    except Unauthorized as error:
        error.headers = {**error.headers, "WWW-Authenticate": CHALLENGE}
        raise
    if current_app.config["METRICS"] == "off":
        html = render_off()
    else:  # the worker set's values (multiprocess under gunicorn) and the follower's gauges, as /metrics
        html = render(page_model(read_figures(metrics.registry().collect())), current_app.config["CONVEX_IS_STANDIN"])
    return Response(html, mimetype="text/html")


def _page_policy(response: Response) -> Response:
    if request.endpoint == "verdict.verdict" and response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = POLICY  # set: replaces the JSON API's policy
    return response


def _install_policy(state: BlueprintSetupState) -> None:
    app: Flask = state.app
    # Flask calls the app's after-request functions last-registered first: put first, this one runs
    # after hooks/security.py has added its headers, and replaces the one that would block the style.
    app.after_request_funcs.setdefault(None, []).insert(0, _page_policy)


bp.record_once(_install_policy)
