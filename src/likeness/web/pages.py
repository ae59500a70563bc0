"""HTML pages from the files in templates/. Every value is HTML-escaped unless it is a
fragment this module rendered itself (``Html``), so a video's name cannot inject markup."""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files
from string import Template


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
    """The conversation_url page. A placeholder until the media plane lands: it says the
    conversation's state (``active``, ``ended``, ``not-found``, ``token-required``)."""
    return render("conversation.html", title=title, state=state, message=message)
