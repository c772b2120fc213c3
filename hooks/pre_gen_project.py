"""Refuse bad answers before cookiecutter writes a single file.

The prompts already stop at a bad answer (cookiecutter.json renders
`refuse_bad_answers` after them); answers that skip the prompts (`--replay`, a
replay file) are checked here. Each bad answer prints one line naming the
field, the value and what is allowed; the hook then exits 1, and cookiecutter
removes the project directory it made.
"""

import json
import sys

PROBLEMS = json.loads(r"""{{ problem_lines(answer_problems(cookiecutter)) | tojson }}""")


if __name__ == "__main__":
    for line in PROBLEMS:
        print(line, file=sys.stderr)
    sys.exit(1 if PROBLEMS else 0)
