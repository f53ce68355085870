"""The documentation: README.md is a short front page, the MkDocs site under docs/ builds with --strict, and every
command shown in a shell code block of README.md or docs/ exists: a `make` target in the Makefile, a `python -m`
module (with its subcommand) that answers `--help`, or a known program. Fast: nothing runs but `--help` and the
site build; each distinct module answers once, all of them in one child process."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
README_MAX_LINES = 250
PAPER_TITLE = ("Pioneering Comprehensive Dynamic Affective Alignment for Dynamic Facial Expression Recognition "
               "with CLIP")

SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}      # fenced blocks whose lines are commands
# Programs whose commands are shown but not run or parsed here: only their name is checked.
KNOWN_PROGRAMS = {"dvc", "mkdocs", "prefect", "curl", "git", "pip", "docker", "gto", "dask", "apt-get", "xdg-open",
                  "export", "grep", "ss", "du", "rm", "ls", "cd", "sha256sum", "label-studio"}
PYTHONS = {"python", "python3"}
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}
MODULES_WITH_SUBCOMMANDS = {"a3lign_dfer", "a3lign_research"}
# The project's own modules answer --help; another module (pytest, json.tool, venv) need only be importable.
PROJECT_PACKAGES = {"a3lign_dfer", "a3lign_research", "flows"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, command) for every command line of the page's shell code blocks: comments and blank lines
    skipped, in `console` blocks only the `$ ` lines (the rest is output), continuation lines joined."""
    out, lang, pending, start = [], None, "", 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            lang = fence.group(1).lower() if lang is None else None
            pending = ""
            continue
        if lang is None or lang not in SHELL_BLOCKS:
            continue
        text = line.strip()
        if lang == "console":
            if not (text.startswith("$ ") or pending):
                continue
            text = text[2:] if text.startswith("$ ") and not pending else text
        if not pending and (not text or text.startswith("#")):
            continue
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        out.append((start, pending + text))
        pending = ""
    return out


def segments(command: str) -> list[list[str]]:
    """The simple commands of a line (split at &&, ||, ;, |, subshells), comments dropped, leading VAR=value
    assignments dropped."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    parts, current = [], []
    for token in lexer:
        if token in OPERATORS:
            parts.append(current)
            current = []
        else:
            current.append(token)
    parts.append(current)
    result = []
    for words in parts:
        while words and ENV_ASSIGNMENT.match(words[0]):
            words = words[1:]
        if words:
            result.append(words)
    return result


@functools.cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    targets = set()
    for line in text.splitlines():
        if line.startswith(".PHONY:"):
            targets.update(line.split(":", 1)[1].split())
        match = re.match(r"^([A-Za-z0-9_.-]+(?: +[A-Za-z0-9_.-]+)*) *:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return frozenset(targets)


def _first_word(args: list[str]) -> str | None:
    """The subcommand: the first argument that is not an option (`--params FILE` skipped)."""
    words = iter(args)
    for word in words:
        if word == "--params":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def help_key(words: list[str]) -> tuple[str, ...] | None:
    """What must answer --help for this command: (module,) or (module, subcommand); None if not a module run."""
    program = Path(words[0]).name
    if program == "a3lign-dfer":
        module, args = "a3lign_dfer", words[1:]
    elif program in PYTHONS and len(words) > 2 and words[1] == "-m":
        module, args = words[2], words[3:]
    else:
        return None
    if module in MODULES_WITH_SUBCOMMANDS:
        sub = _first_word(args)
        return (module, sub) if sub else (module,)
    return (module,)


# One child process answers every project module's --help in turn (runpy, as `python -m` runs it), so torch,
# Prefect and the rest are imported once, not once per module; an alarm stops a module that does not answer.
HELP_RUNNER = r"""
import contextlib, io, json, runpy, signal, sys

def too_slow(*_):
    raise TimeoutError("did not answer --help within 60 s (does it parse its arguments before working?)")

signal.signal(signal.SIGALRM, too_slow)
for line in sys.stdin:
    key = json.loads(line)
    sink, answer, argv = io.StringIO(), "printed no help (did not exit)", sys.argv[:]
    signal.alarm(60)
    try:
        sys.argv = [key[0], *key[1:], "--help"]
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            runpy.run_module(key[0], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        answer = None if done.code in (0, None) else f"exit status {done.code}: {sink.getvalue()[-600:]}"
    except BaseException as err:
        answer = f"{type(err).__name__}: {err}"
    finally:
        signal.alarm(0)
        sys.argv = argv
    print("@@help@@", json.dumps([key, answer]), flush=True)
"""


def _ask_for_help(keys: list[tuple[str, ...]]) -> dict[tuple[str, ...], str | None]:
    """`python -m MODULE [SUB] --help` from the repository root for every key: None when it exits 0, else why not.
    A key the shared child did not answer (it died on an earlier one) is asked again in a process of its own."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DO_NOT_TRACK": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", HELP_RUNNER], cwd=ROOT, env=env, capture_output=True, text=True,
                              input="".join(json.dumps(list(k)) + "\n" for k in keys), check=False, timeout=240)
        output = done.stdout
    except subprocess.TimeoutExpired as slow:
        output = slow.stdout.decode() if isinstance(slow.stdout, bytes) else (slow.stdout or "")
    answers = {}
    for line in output.splitlines():
        if line.startswith("@@help@@ "):
            key, answer = json.loads(line.split(" ", 1)[1])
            answers[tuple(key)] = answer
    for key in keys:
        if key not in answers:
            answers[key] = _subprocess_help(key)
    return answers


def _subprocess_help(key: tuple[str, ...]) -> str | None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DO_NOT_TRACK": "1"}
    try:
        done = subprocess.run([sys.executable, "-m", key[0], *key[1:], "--help"], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False, timeout=90)
    except subprocess.TimeoutExpired:
        return "did not answer --help within 90 s (does it parse its arguments before working?)"
    if done.returncode == 0:
        return None
    return f"exit status {done.returncode}: {(done.stdout + done.stderr)[-600:]}"


def _importable(module: str) -> str | None:
    try:
        found = importlib.util.find_spec(module)
    except ImportError as err:
        return f"{type(err).__name__}: {err}"
    return None if found is not None else f"no module named {module!r}"


PAGE_COMMANDS = [(path, number, command) for path in PAGES for number, command in shell_lines(path)]


@functools.cache
def help_answers() -> dict[tuple[str, ...], str | None]:
    """Every distinct module (and subcommand) the pages run, asked once: the project's modules (the product CLI,
    the research wing, the flows) for --help, any other module only found."""
    keys = {key for _, _, command in PAGE_COMMANDS for words in segments(command)
            if (key := help_key(words)) is not None}
    project = sorted(k for k in keys if k[0].split(".")[0] in PROJECT_PACKAGES)
    answers = _ask_for_help(project)
    answers.update({key: _importable(key[0]) for key in keys - set(project)})
    return answers


def check_command(command: str) -> list[str]:
    problems = []
    for words in segments(command):
        program = Path(words[0]).name
        if program == "make":
            targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            problems += [f"make target {t!r} is not in the Makefile" for t in targets if t not in make_targets()]
        elif (key := help_key(words)) is not None:
            answer = help_answers()[key]
            if answer is not None:
                problems.append(f"`python -m {' '.join(key)}`: {answer}")
        elif program not in KNOWN_PROGRAMS | PYTHONS:
            problems.append(f"unknown program {program!r} (known: make, python -m, {sorted(KNOWN_PROGRAMS)})")
    return problems


@pytest.mark.parametrize("path,number,command", PAGE_COMMANDS,
                         ids=[f"{_rel(p)}:{n}" for p, n, _ in PAGE_COMMANDS])
def test_every_shown_command_exists(path, number, command):
    problems = check_command(command)
    assert not problems, f"{_rel(path)}:{number}: {command}\n" + "\n".join(problems)


def test_the_command_parser_reads_what_the_pages_show(tmp_path):
    """The parsing the command check relies on: comments, continuations, env assignments, pipes, console output."""
    assert segments("A=1 B=2 .venv/bin/python -m a3lign_dfer serve --port 8001  # a comment") == \
        [[".venv/bin/python", "-m", "a3lign_dfer", "serve", "--port", "8001"]]
    assert [w[0] for w in segments("curl -s http://x/predict | python -m json.tool && make test")] == \
        ["curl", "python", "make"]
    assert help_key(["python", "-m", "a3lign_dfer", "--params", "p.yaml", "serve", "--artifact", "d"]) == \
        ("a3lign_dfer", "serve")
    assert help_key([".venv/bin/python", "-m", "a3lign_research.benchmarks.int8", "--repeats", "3"]) == \
        ("a3lign_research.benchmarks.int8",)
    assert help_key(["a3lign-dfer", "drift", "batch"]) == ("a3lign_dfer", "drift")
    assert {"repro", "test", "service", "install"} <= make_targets()
    assert check_command("make no-such-target") and check_command("frobnicate --now")
    page = "```console\n$ make repro \\\n    --quiet\nsome output\n```\n```text\nnot a command\n```\n" \
           "```bash\n# a comment\n\ndvc exp show\n```\n"
    (tmp_path / "page.md").write_text(page)
    assert shell_lines(tmp_path / "page.md") == [(2, "make repro  --quiet"), (12, "dvc exp show")]


def test_mkdocs_builds_strict(tmp_path):
    """Broken links, anchors and images fail the build (mkdocs.yml `validation`, --strict)."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True,
                          check=False, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_readme_is_a_short_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}: " \
                                           "move reference material into docs/"
    text = README.read_text()
    words = " ".join(text.replace("*", "").split()).lower()
    for needed in ("face video in, one of seven expressions out", "make repro", "make test", "mkdocs serve",
                   "labels.csv", PAPER_TITLE, "LICENSE", "CITATION.cff"):
        assert needed.lower() in words, f"README.md no longer mentions {needed!r}"


def test_readme_links_point_at_files():
    """README is read outside the site (no mkdocs check): its relative links must name files of the repository."""
    for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text()):
        if re.match(r"^[a-z]+://", target) or target.startswith("#"):
            continue
        assert (ROOT / target.split("#", 1)[0]).exists(), f"README.md links {target!r}, which does not exist"


def test_each_generated_block_lives_in_one_place():
    """A generated block (`<!-- NAME:start -->` ... `<!-- NAME:end -->`) is on exactly one page, once, and whole;
    `results` and `setup-times` are on the front page."""
    where: dict[str, list[str]] = {}
    for path in PAGES:
        text = path.read_text()
        starts = re.findall(r"^<!-- ([\w-]+):start -->$", text, flags=re.MULTILINE)
        ends = re.findall(r"^<!-- ([\w-]+):end -->$", text, flags=re.MULTILINE)
        assert starts == ends, f"{_rel(path)}: block markers do not pair up: {starts} vs {ends}"
        for name in starts:
            where.setdefault(name, []).append(_rel(path))
    duplicated = {name: files for name, files in where.items() if len(files) > 1}
    assert not duplicated, f"blocks on more than one page (or twice on one): {duplicated}"
    assert where.get("results") == ["README.md"] and where.get("setup-times") == ["README.md"]


def test_license_and_citation():
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the A3lign-DFER pipeline authors" in license_text
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["title"] and citation["authors"]
    cited = [citation.get("preferred-citation", {}), *citation.get("references", [])]
    paper = next((ref for ref in cited if PAPER_TITLE in ref.get("title", "")), None)
    assert paper is not None, f"CITATION.cff names no work titled ...{PAPER_TITLE!r}"
    assert {"Tao", "Zhang"} <= {author.get("family-names") for author in paper["authors"]}
