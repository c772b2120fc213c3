"""The option matrix, derived from cookiecutter.json.

Every option whose declared value is a list (a choice) or a boolean (a flag)
is a dimension; free-text options keep their defaults. Adding an option to
cookiecutter.json adds its combinations here with no other change.
"""

import itertools
import json
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
DECLARED = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))


def dimensions() -> dict[str, list]:
    found = {}
    for name, declared in DECLARED.items():
        if name.startswith("_"):
            continue
        if isinstance(declared, bool):
            found[name] = [True, False]
        elif isinstance(declared, list):
            found[name] = list(declared)
    return found


def combinations() -> list[dict]:
    dims = dimensions()
    return [dict(zip(dims, values, strict=True)) for values in itertools.product(*dims.values())]


def combination_id(answers: dict) -> str:
    """A short readable id: choice values, then the flags that are on."""
    parts = []
    for name, value in answers.items():
        if isinstance(value, bool):
            if value:
                parts.append(name.removeprefix("use_"))
        else:
            parts.append(str(value))
    return "-".join(parts) or "default"


def defaults() -> dict:
    """The matrix answers a user gets by pressing enter at every prompt."""
    return {
        name: declared if isinstance(declared, bool) else declared[0]
        for name, declared in DECLARED.items()
        if name in dimensions()
    }
