"""The layering rules of DESIGN.md ("Layout"), read from the source with ``ast``.

- ``phosphene.live.show`` and ``phosphene.live.analysis`` (the pure core) import no torch, GL,
  sockets, OSC, MIDI or audio devices, and nothing from the shells around them: the runtime,
  the audio package, the OSC server, MIDI, GL. ``show`` may use the routes (the one table of
  addresses) and the analysis; the analysis never uses ``show``. The few exceptions are
  listed in ``CORE_ALLOWED``, each with its reason.
- ``phosphene.render`` and ``phosphene.models`` never import ``phosphene.live``.
- Library code never imports the CLI (``phosphene.cli``, ``phosphene.commands``).
- An import of ``phosphene`` code inside a function says why it is there (a heavy or optional
  dependency, an import cycle, start-up time), in a comment on its line or just above it.

Every import counts, wherever it is: module level, inside a function, under ``try``. Imports
under ``if TYPE_CHECKING:`` count too: they load nothing at run time, but a type named in the
core is still a dependency on the shell that defines it, which is what the layering forbids.
(There are none today.)

The static rules see what a module names; ``test_core_import_loads_no_shell`` checks what
importing the core actually loads, including through third-party packages.
"""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from source_tree import ROOT, source_modules

CORE = ("phosphene.live.show", "phosphene.live.analysis")

# Third-party packages the core must not import (top-level names): torch, GL, sockets, audio
# devices, MIDI, OSC.
CORE_FORBIDDEN_LIBRARIES = ("torch", "moderngl", "glfw", "OpenGL", "socket", "socketserver",
                            "sounddevice", "rtmidi", "mido", "pythonosc")

# phosphene modules the core must not import (each with everything under it), per core package.
_SHELLS = ("phosphene.live.runtime", "phosphene.live.audio", "phosphene.live.control",
           "phosphene.render", "phosphene.cli", "phosphene.commands")
CORE_FORBIDDEN_MODULES = {
    "phosphene.live.show": _SHELLS,
    "phosphene.live.analysis": _SHELLS + ("phosphene.live.show",),
}

# The exceptions: (importing package or module, imported module), each with its reason.
CORE_ALLOWED = {
    # show may use the routes (DESIGN.md): the one table of OSC/MIDI addresses and their
    # handlers, pure (no socket, no MIDI port); presets check their bindings against it
    ("phosphene.live.show", "phosphene.live.control.routes"),
    # effect metadata (names, parameters, ranges) read from the GLSL files' header comments;
    # presets check their effect chains against it. test_render_effects_is_gl_free keeps it so.
    ("phosphene.live.show.presets", "phosphene.render.effects"),
    # a file reader with no device import (the offline twin of AudioIn): the analysis of a
    # whole file feeds the analyzer the same hops a live input would
    ("phosphene.live.analysis.file_analysis", "phosphene.live.audio.file_source"),
    # inside mapper_from_generator only: it wraps a torch generator its caller has already
    # built, so the import loads nothing new; importing show loads no torch (checked below)
    ("phosphene.live.show.keyframes", "torch"),
}

# Modules that may import the CLI: the CLI itself.
CLI_MODULES = ("phosphene.cli", "phosphene.commands", "phosphene.__main__")


@dataclass(frozen=True)
class Import:
    importer: str             # dotted name of the importing module
    path: Path
    line: int
    end_line: int
    target: str               # dotted name imported (a submodule where `from pkg import mod`)
    local: bool               # inside a function (or a class inside one)
    type_checking: bool       # under `if TYPE_CHECKING:`
    # first lines of the import statements from the start of the run of imports this one is
    # in, up to and including this one
    run_lines: tuple[int, ...]

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import reads from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class _Collector(ast.NodeVisitor):
    def __init__(self, importer: str, path: Path, known: set[str]):
        self.importer, self.path, self.known = importer, path, known
        self.is_package = path.name == "__init__.py"
        self.function_depth = 0
        self.type_checking = 0
        self.imports: list[Import] = []

    def _body_runs(self, body: list[ast.stmt]) -> None:
        """Note, for each import statement, the statements of its run of consecutive imports
        up to itself (a comment above one of them covers it and the imports after it)."""
        run: tuple[int, ...] = ()
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                run += (stmt.lineno,)
                stmt._run_lines = run  # type: ignore[attr-defined]
            else:
                run = ()

    def generic_visit(self, node: ast.AST) -> None:
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list):
                self._body_runs(body)
        for handler in getattr(node, "handlers", []):
            self._body_runs(handler.body)
        super().generic_visit(node)

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.function_depth += 1
        self.generic_visit(node)
        self.function_depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.type_checking += 1
            self._body_runs(node.body)
            for stmt in node.body:
                self.visit(stmt)
            self.type_checking -= 1
            self._body_runs(node.orelse)
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def _add(self, node: ast.stmt, target: str) -> None:
        self.imports.append(Import(
            self.importer, self.path, node.lineno, node.end_lineno or node.lineno, target,
            self.function_depth > 0, self.type_checking > 0,
            getattr(node, "_run_lines", (node.lineno,))))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve(self.importer, self.is_package, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(node, sub if sub in self.known else base)


@cache
def all_imports() -> tuple[Import, ...]:
    modules = source_modules()
    known = set(modules)
    out: list[Import] = []
    for name, path in modules.items():
        collector = _Collector(name, path, known)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector._body_runs(tree.body)
        collector.visit(tree)
        out += collector.imports
    return tuple(out)


def _allowed(imp: Import) -> bool:
    return any(_within(imp.importer, importer) and _within(imp.target, target)
               for importer, target in CORE_ALLOWED)


def test_the_tree_is_read():
    # guards the rules below against passing on an empty or mis-mapped tree
    modules = source_modules()
    for name in ("phosphene.cli", "phosphene.live.show.show", "phosphene.live.analysis.analyzer",
                 "phosphene.render.chain", "phosphene.models.loading"):
        assert name in modules, name
    targets = {i.target for i in all_imports()}
    assert "phosphene.live.show.presets" in targets
    assert "phosphene.models.loading.checkpoint" in targets     # a relative import, resolved


def test_core_imports_no_shell():
    offenders = []
    for imp in all_imports():
        core = next((c for c in CORE if _within(imp.importer, c)), None)
        if core is None or _allowed(imp):
            continue
        library = imp.target.split(".")[0] in CORE_FORBIDDEN_LIBRARIES
        shell = any(_within(imp.target, m) for m in CORE_FORBIDDEN_MODULES[core])
        if library or shell:
            offenders.append(f"{imp.where()}: {imp.importer} imports {imp.target}")
    assert not offenders, "the pure core imports a shell:\n" + "\n".join(offenders)


def test_render_effects_is_gl_free():
    # the one render module the core may import
    gl = ("moderngl", "glfw", "OpenGL")
    offenders = [f"{i.where()}: {i.target}" for i in all_imports()
                 if i.importer == "phosphene.render.effects"
                 and (i.target.split(".")[0] in gl
                      or (i.target.startswith("phosphene.") and i.target != "phosphene.errors"))]
    assert not offenders, offenders


def test_core_import_loads_no_shell():
    """Import every module of show/ and analysis/ in a fresh interpreter: no torch, GL, audio
    device, MIDI or OSC package, and no shell module of ours, ends up loaded.

    ``socket`` itself is not on this list, honestly: scipy (the analyzer's filters) loads
    numpy.testing, which loads importlib.metadata -> email.utils -> the stdlib ``socket``
    module. Loading that module opens nothing; what the rule means is that the core never
    opens a socket, so the import runs with ``socket.socket`` replaced by a class that fails.
    ``socketserver`` (what an OSC server is built on) must not be loaded at all."""
    modules = sorted(n for n in source_modules() if any(_within(n, c) for c in CORE))
    allowed = sorted({target for _, target in CORE_ALLOWED if target.startswith("phosphene.")})
    code = f"""
import importlib, json, socket, sys

class _NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        raise AssertionError("a socket was opened while importing the core")

socket.socket = _NoSocket
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.splitlines()[-1])
    libraries = ("torch", "moderngl", "glfw", "OpenGL", "sounddevice", "_sounddevice", "rtmidi",
                 "mido", "pythonosc", "socketserver")
    bad = [m for m in loaded if m.split(".")[0] in libraries]
    assert not bad, f"importing the core loads {bad}"
    shells = [m for m in loaded if any(_within(m, s) for s in _SHELLS)
              and m not in allowed and not any(_within(a, m) for a in allowed)]
    assert not shells, f"importing the core loads shell modules {shells}"


def test_render_and_models_never_import_live():
    offenders = [f"{i.where()}: {i.importer} imports {i.target}" for i in all_imports()
                 if (_within(i.importer, "phosphene.render") or _within(i.importer,
                                                                        "phosphene.models"))
                 and _within(i.target, "phosphene.live")]
    assert not offenders, "\n".join(offenders)


def test_library_code_never_imports_the_cli():
    offenders = [f"{i.where()}: {i.importer} imports {i.target}" for i in all_imports()
                 if not any(_within(i.importer, m) for m in CLI_MODULES)
                 and (_within(i.target, "phosphene.cli") or _within(i.target,
                                                                    "phosphene.commands"))]
    assert not offenders, "\n".join(offenders)


@cache
def _comment_lines(path: Path) -> frozenset[int]:
    text = path.read_text(encoding="utf-8")
    return frozenset(tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                     if tok.type == tokenize.COMMENT)


def _explained(imp: Import) -> bool:
    """A comment on the import's own line(s) or on the line above it; the line above counts
    for a block: a comment just above an import statement covers it and the import statements
    that directly follow it (blank lines between them allowed, other statements not)."""
    comments = _comment_lines(imp.path)
    return (any(line in comments for line in range(imp.line, imp.end_line + 1))
            or any(line - 1 in comments for line in imp.run_lines))


def test_function_local_imports_say_why():
    """A ``phosphene`` import inside a function hides a dependency from the top of the file;
    it is there for a reason (torch or GL loaded only when needed, an import cycle, the CLI's
    start-up time), and the reason is written next to it."""
    unexplained = sorted({imp.where() for imp in all_imports()
                          if imp.local and _within(imp.target, "phosphene")
                          and not _explained(imp)},
                         key=lambda w: (w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])))
    assert not unexplained, ("function-local phosphene imports without a comment saying why "
                             "(hoist them to the top, or say why not):\n" + "\n".join(unexplained))
