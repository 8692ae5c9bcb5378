"""Write the per-table dbt staging models, which cookiecutter cannot loop over as files.

They are rendered from ``per_table/`` by the template's Jinja environment before this hook runs and
arrive here base64-encoded as ``{relative path: text}``; this hook only writes them.
"""

import base64
import json
from pathlib import Path

FILES = json.loads(base64.b64decode("{{ oso_table_files(cookiecutter) }}"))

for relative, text in FILES.items():
    path = Path(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
