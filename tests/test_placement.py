"""Where things live, checked by reading the source: SQL only in repositories, ids minted
only in kit/ids.py (in the formats that are on the wire)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import likeness
from likeness.kit import ids

SRC = Path(likeness.__file__).parent
# What builds a query; Session/sessionmaker (types) and the table columns are not SQL here.
QUERY_BUILDERS = {"select", "update", "delete", "insert", "func", "text", "or_", "and_"}
# A feature (a package with a repository.py) builds its SQL there and nowhere else. The job
# floor (jobs/: the lease helper over every leased row, the broker's table), the schema and
# the db kit are SQL by nature and are not features.
FEATURES = {path.parent.name for path in SRC.glob("*/repository.py")}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(SRC)), ast.parse(path.read_text()))
        for path in sorted(SRC.rglob("*.py"))
    ]


def test_a_features_sql_is_built_only_in_its_repository() -> None:
    assert {"replica", "video", "webhooks"} <= FEATURES
    offenders = [
        f"{name}: {alias.name}"
        for name, tree in _modules()
        if name.split("/")[0] in FEATURES and not name.endswith("/repository.py")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy")
        for alias in node.names
        if alias.name in QUERY_BUILDERS
    ]
    assert offenders == []


def test_ids_are_minted_only_in_kit_ids() -> None:
    minted = {
        name
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "secrets"
        and node.attr == "token_hex"  # ids are hex; a token_urlsafe is a credential
    }
    assert minted == {"kit/ids.py", "config.py"}  # config.py: the API key, a secret, not an id


def test_id_formats_are_the_wire_formats() -> None:
    assert re.fullmatch(r"[0-9a-f]{10}", ids.video_id())
    assert re.fullmatch(r"r[0-9a-f]{10}", ids.replica_id())
    assert re.fullmatch(r"u[0-9a-f]{12}", ids.upload_id())
    assert re.fullmatch(r"msg_[0-9a-f]{24}", ids.webhook_message_id())
    assert len({ids.video_id() for _ in range(100)}) == 100
