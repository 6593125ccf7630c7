"""benchmarks/RESULTS.md is shared by several benchmark scripts: each owns one `## ` section.

A script replaces its own section (from its `## HEADING` line up to the next `## ` line or the end
of the file) and leaves every other section byte for byte as it was, so running one benchmark never
drops another's figures:

    results_md.replace_section(path, "Conversion", text)   # text starts with "## Conversion"

Sections a script writes use `###` and deeper for their own sub-headings.
"""
import os

TITLE = "# Benchmark results"


def replace_section(path, heading, body):
    """Writes `body` as section `## heading` of the Markdown file at `path`.

    `body` must start with the line `## heading`. An existing section of that name is replaced in
    place; a missing one is appended; a missing file is created with the title line. The file is
    replaced atomically (a temporary file renamed over it).
    """
    first = "## " + heading
    new = body.rstrip("\n").split("\n")
    if new[0].rstrip() != first:
        raise ValueError(f"section text must start with {first!r}, got {new[0]!r}")
    for line in new[1:]:
        if line.startswith("## ") or line.startswith("# "):
            raise ValueError(f"section {heading!r} may only use ### and deeper headings, got {line!r}")
    text = open(path).read() if os.path.exists(path) else TITLE + "\n"
    lines = text.rstrip("\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line.rstrip() == first), None)
    if start is None:
        out = lines + [""] + new
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        rest = lines[end:]
        out = lines[:start] + new + ([""] + rest if rest else [])
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, path)
