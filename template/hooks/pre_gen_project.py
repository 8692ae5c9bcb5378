"""Refuse answers that would generate a broken source package. Validation only: nothing is written here.

The checks run while cookiecutter renders this file (``oso_problems`` in ``oso_dagster.scaffold.jinja``, the
same ones ``oso-new-source`` makes before calling cookiecutter); this script reports them. The
problems arrive base64-encoded, so this file is valid Python before and after rendering and no answer
can become code.
"""

import base64
import json
import sys

PROBLEMS = json.loads(base64.b64decode("{{ oso_payload(oso_problems(cookiecutter)) }}"))

if PROBLEMS:
    for problem in PROBLEMS:
        print(f"ERROR: {problem}", file=sys.stderr)
    sys.exit(1)
