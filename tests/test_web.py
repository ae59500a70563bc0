"""Pages a browser opens: /docs and /redoc work with no internet (assets served by the app)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

# Every URL a page loads: attributes, and the spec URL Swagger UI's script is given.
_REFERENCES = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|\burl: '([^']+)'""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_another_host(client: TestClient, page: str) -> None:
    response = client.get(page, headers={"x-api-key": ""})
    assert response.status_code == 200
    assert "//" not in response.text  # no https://cdn…, no protocol-relative //cdn…
    references = [a or b for a, b in _REFERENCES.findall(response.text)]
    assert len(references) >= (4 if page == "/docs" else 3), references
    for url in references:
        assert url.startswith("/"), url  # a path on this app, not another host
        asset = client.get(url, headers={"x-api-key": ""})
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert "swagger-ui-bundle.js" in response.text or "redoc.standalone.js" in response.text
