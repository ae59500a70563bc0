"""HTML pages from the files in templates/, and their script and style from static/. Every
value is HTML-escaped unless it is a fragment this module rendered itself (``Html``), so a
video's name cannot inject markup."""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files
from pathlib import Path
from string import Template

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/c/assets"


class Html(str):
    """Markup that is already safe: a rendered template."""


@cache
def _template(name: str) -> Template:
    return Template((files("likeness.web") / "templates" / name).read_text(encoding="utf-8"))


def render(name: str, **values: str) -> Html:
    safe = {k: v if isinstance(v, Html) else html.escape(v) for k, v in values.items()}
    return Html(_template(name).substitute(safe))


def watch(title: str, status: str, ready: bool, source: str) -> Html:
    """The hosted_url page: a player once the video is ready, else its status (the page
    reloads itself every 3 s until then). ``source`` is relative to the page's own URL, so
    the capability token in the path carries over."""
    main = render("player.html", source=source) if ready else render("waiting.html", status=status)
    return render("watch.html", title=title, main=main)


def conversation(title: str, state: str, message: str) -> Html:
    """The conversation_url page of a conversation nobody can join: it says why (``ended``,
    ``not-found``, ``token-required``)."""
    return render("conversation.html", title=title, state=state, message=message)


def call(title: str, conversation_id: str, captions: bool) -> Html:
    """The conversation_url page of an active conversation: static/conversation.js joins it
    (Join, then the mic prompt) and reads the meeting token from the page's own ``?t=``."""
    return render(
        "call.html", title=title, conversation_id=conversation_id, captions=str(captions).lower()
    )


def install(app: FastAPI) -> None:
    """Serve static/ (the page's script and style) beside the pages, under /c/assets: the
    pages link them relatively, so a proxy's path prefix carries over."""
    static = Path(str(files("likeness.web") / "static"))
    app.mount(ASSETS_URL, StaticFiles(directory=static), name="conversation-assets")
