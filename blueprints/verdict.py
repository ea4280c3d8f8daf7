"""GET /verdict (docs/contract.md §15): the live verdict page, behind CRM_API_KEY. HTTP only: the figures
are services/verdict_page.py's, the HTML services/verdict_html.py's. Not under /api/: no timing line."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from services import scrape
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
        html = render(page_model(read_figures(scrape.registry().collect())), current_app.config["CONVEX_IS_STANDIN"])
    # Its own policy: hooks/security.py adds the JSON API's only to answers that set none.
    return Response(html, mimetype="text/html", headers={"Content-Security-Policy": POLICY})
