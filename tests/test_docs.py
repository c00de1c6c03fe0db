"""The manual: README.md is the front door, the guides live in docs/.

Checks that README.md stays short and keeps the two setup commands at the
top, that every relative link in README.md and docs/*.md reaches a file
(and, for a Markdown target, a heading), and that every kcompress and
tflite_export name the fenced ``python`` blocks use still resolves.
"""

import ast
import importlib
import pathlib
import re
import warnings

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
PACKAGES = ("kcompress", "tflite_export")
# Names the blocks use without importing them in the same block (a guide's
# later blocks lean on its first one's `import kcompress as kc`).
DEFAULT_ALIASES = {"kc": "kcompress", "kcompress": "kcompress",
                   "te": "tflite_export", "tflite_export": "tflite_export"}

FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _relative(path):
    return path.relative_to(ROOT).as_posix()


def fenced_blocks(path):
    """(language, first line number, code) for each fenced block, dedented."""
    blocks, block = [], None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if block is None:
            if match:
                block = (match.group(2).lower(), number,
                         len(match.group(1)), [])
        elif match and len(match.group(1)) <= block[2] and not match.group(2):
            blocks.append((block[0], block[1], "\n".join(block[3])))
            block = None
        else:
            indent = block[2]
            block[3].append(line[indent:] if not line[:indent].strip()
                            else line.lstrip())
    assert block is None, (
        f"{_relative(path)}: unclosed fence at line {block[1]}")
    return blocks


def prose_lines(path):
    """(line number, text) outside fenced blocks, inline code blanked."""
    inside, indent = False, 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if match and (not inside or len(match.group(1)) <= indent):
            inside, indent = not inside, len(match.group(1))
            continue
        if not inside:
            yield number, INLINE_CODE.sub("``", line)


def test_readme_is_short_and_starts_with_the_two_commands():
    readme = ROOT / "README.md"
    lines = readme.read_text().splitlines()
    assert len(lines) < 400, (
        f"README.md has {len(lines)} lines; keep it under 400")
    shell = [code for lang, _, code in fenced_blocks(readme)
             if lang in ("sh", "bash", "shell", "console")]
    assert shell, "README.md has no fenced shell block"
    commands = [line.split("#", 1)[0].strip() for line in shell[0].splitlines()]
    commands = [command for command in commands if command]
    # .ci/run runs `make test`: the README's command is the CI's command.
    assert commands == ["make demo", "make test"], commands
    first_block = fenced_blocks(readme)[0]
    assert first_block[0] in ("sh", "bash", "shell", "console"), (
        "the two commands must be the README's first code block")


def heading_anchors(path):
    """GitHub's anchors for the Markdown headings of `path`."""
    anchors, seen, inside, indent = set(), {}, False, 0
    for line in path.read_text().splitlines():
        match = FENCE.match(line)
        if match and (not inside or len(match.group(1)) <= indent):
            inside, indent = not inside, len(match.group(1))
            continue
        heading = None if inside else HEADING.match(line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower())
        slug = slug.replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_relative_links_reach_files_and_headings():
    broken, checked = [], 0
    for page in PAGES:
        for number, line in prose_lines(page):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue  # http:, https:, mailto:
                file_part, _, anchor = target.partition("#")
                resolved = ((page.parent / file_part).resolve()
                            if file_part else page)
                checked += 1
                where = f"{_relative(page)}:{number}: {target}"
                if not resolved.exists():
                    broken.append(f"{where} (no such file)")
                elif anchor and resolved.suffix == ".md" and (
                        anchor not in heading_anchors(resolved)):
                    broken.append(f"{where} (no heading #{anchor})")
    assert checked > 30, (
        f"only {checked} relative links found; is the parser right?")
    assert not broken, "broken links:\n" + "\n".join(broken)


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def names_used(tree):
    """The package names one block uses: imports and attribute chains."""
    aliases = dict(DEFAULT_ALIASES)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    names.add(alias.name)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split(".")[0] in PACKAGES) and not node.level:
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                names.add(dotted)
                aliases[alias.asname or alias.name] = dotted

    class Chains(ast.NodeVisitor):
        def visit_Attribute(self, node):
            dotted = _dotted(node)
            if dotted and dotted.split(".")[0] in aliases:
                root, _, rest = dotted.partition(".")
                names.add(f"{aliases[root]}.{rest}")
                return
            self.generic_visit(node)

    Chains().visit(tree)
    return names


def resolves(dotted):
    parts = dotted.split(".")
    obj, path = importlib.import_module(parts[0]), parts[0]
    for part in parts[1:]:
        path = f"{path}.{part}"
        if hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            obj = importlib.import_module(path)  # a submodule not yet imported


def test_python_blocks_use_names_that_exist():
    uses, skipped = {}, []
    for page in PAGES:
        for lang, line, code in fenced_blocks(page):
            if lang not in ("python", "py"):
                continue
            where = f"{_relative(page)}:{line}"
            try:
                tree = ast.parse(code)
            except SyntaxError as error:
                skipped.append(f"{where} ({error.msg})")
                continue
            for name in names_used(tree):
                uses.setdefault(name, []).append(where)
    if skipped:
        warnings.warn("python blocks that do not parse, not checked: "
                      + "; ".join(skipped), stacklevel=1)
    assert len(uses) > 20, (
        f"only {len(uses)} names found; is the parser right?")
    missing = []
    for name in sorted(uses):
        try:
            resolves(name)
        except (ImportError, AttributeError) as error:
            places = ", ".join(uses[name])
            missing.append(f"{name} (used at {places}): {error}")
    assert not missing, ("names the docs use that do not resolve:\n"
                         + "\n".join(missing))
