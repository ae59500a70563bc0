"""Pages a browser opens: the hosted player (templates/, rendered by pages.py) and the offline
API docs (docs.py). The conversation page joins them here."""
