"""Refuse answers that would generate a broken source package. Validation only: nothing is written here.

The CLI checks the same things before calling cookiecutter; this hook guards plain ``cookiecutter`` runs.
The answers arrive base64-encoded, so this file is valid Python before and after rendering and no
answer can become code.
"""

import base64
import json
import sys

from oso_dagster.errors import TemplateError
from oso_dagster.template import SourceSpec, TableSpec

ANSWERS = json.loads(base64.b64decode("{{ oso_payload(oso_answers(cookiecutter, with_slug=True)) }}"))
PROJECT_SLUG = ANSWERS.pop("project_slug")


def main() -> int:
    spec = SourceSpec(
        name=ANSWERS["source_name"],
        secret_group=ANSWERS["secret_group"],
        secret_key=ANSWERS["secret_key"],
        tables=[TableSpec(name=t["table"], cursor=t["incremental"]) for t in ANSWERS["tables"]],
    )
    try:
        spec.validate()
    except TemplateError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    if spec.project_slug != PROJECT_SLUG:
        print(f"ERROR: the folder must be named {spec.project_slug!r}, not {PROJECT_SLUG!r}.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
