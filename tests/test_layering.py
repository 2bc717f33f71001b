"""The import graph keeps one layering, read from the source (docs/architecture.md):

foundation -> sensors -> config -> carbon -> accounting -> snapshot -> sampling, jobs -> ledger
-> exporters -> daemon, probe -> cli. A unit (a package, or a top-level module) imports only
from lower layers, so there is no package-level cycle; exporters import only the snapshot.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOUNDATION = {
    "errors",
    "paths",
    "units",
    "labels",
    "durations",
    "version",
    "histogram",
    "procfs",
    "codecarbon_data",
    "client",
    "host",
    "periodic",
    "display",
    "http_server",
}
LAYERS: list[set[str]] = [
    FOUNDATION,
    {"sensors"},
    {"config"},
    {"carbon"},
    {"accounting"},
    {"snapshot"},
    {"sampling", "jobs"},
    {"ledger"},
    {"exporters"},
    {"daemon", "probe", "installer", "reports"},
    {"terminal", "service_commands", "report_command"},
    {"cli", "__init__"},
    {"__main__"},
]
LAYER_OF = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "agent":
        parts = parts[1:]
    if parts and parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(["carbonscope", *parts])


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_module(name: str) -> bool:
    return (REPO / "agent" / f"{name}.py").is_file() or (REPO / "agent" / name).is_dir()


def carbonscope_imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "carbonscope":  # `from carbonscope import x`: maybe a module
                names = [
                    f"carbonscope.{alias.name}" if is_module(alias.name) else "carbonscope"
                    for alias in node.names
                ]
            yield from ((node.lineno, name) for name in names if name.startswith("carbonscope"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("carbonscope"):
                    yield node.lineno, alias.name


def sources() -> list[Path]:
    found = sorted((REPO / "agent").rglob("*.py")) + sorted((REPO / "exporters").rglob("*.py"))
    assert len(found) > 50, "the source tree was not found"
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sources():
        unit = unit_of(module_name(path))
        edges.setdefault(unit, set())
        for _line, imported in carbonscope_imports(path):
            if unit_of(imported) != unit:
                edges[unit].add(unit_of(imported))
    return edges


def test_every_unit_has_a_layer() -> None:
    assert set(graph()) <= set(LAYER_OF), set(graph()) - set(LAYER_OF)


def test_imports_go_down_the_layers_only() -> None:
    wrong = []
    for path in sources():
        module = module_name(path)
        unit = unit_of(module)
        for line, imported in carbonscope_imports(path):
            target = unit_of(imported)
            if target == unit:
                continue
            same_foundation = unit in FOUNDATION and target in FOUNDATION
            if LAYER_OF[target] >= LAYER_OF[unit] and not same_foundation:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {unit} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_no_package_level_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}

    def visit(unit: str, trail: list[str]) -> None:
        state[unit] = 1
        for target in sorted(edges.get(unit, ())):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, unit, target]))
            if target not in state:
                visit(target, [*trail, unit])
        state[unit] = 2

    for unit in sorted(edges):
        if unit not in state:
            visit(unit, [])


def test_exporters_import_only_the_snapshot() -> None:
    """... and the HTTP they serve it over (http_server.py, which imports nothing of ours)."""
    for path in sorted((REPO / "exporters").rglob("*.py")):
        for line, imported in carbonscope_imports(path):
            inside = imported.startswith("carbonscope.exporters")
            allowed = imported.split(".")[:2] in (
                ["carbonscope", "snapshot"],
                ["carbonscope", "http_server"],
            )
            assert inside or allowed, f"{path.relative_to(REPO)}:{line} imports {imported}"


def test_leaf_modules_import_nothing_of_carbonscope() -> None:
    leaves = ("labels", "codecarbon_data", "units", "durations", "errors", "version", "http_server")
    for leaf in leaves:
        imports = list(carbonscope_imports(REPO / "agent" / f"{leaf}.py"))
        assert not imports, f"{leaf}.py imports {imports}"


def test_jobs_know_neither_the_ledger_nor_a_particular_source() -> None:
    for path in sorted((REPO / "agent" / "jobs").rglob("*.py")):
        for line, imported in carbonscope_imports(path):
            if imported.startswith("carbonscope.sensors"):
                assert imported == "carbonscope.sensors.base", f"{path.name}:{line}: {imported}"


def test_checking_a_config_does_not_load_codecarbon_or_the_carbon_package() -> None:
    code = (
        "import sys\n"
        "from carbonscope.config.loader import load_config\n"
        "from carbonscope.config.schema import Config\n"
        "config = Config.model_validate({'carbon': {'location': 'us-ca'}})\n"
        "assert config.carbon.location == 'US-CA', config.carbon.location\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'codecarbon'\n"
        "          or m.startswith(('carbonscope.carbon', 'carbonscope.jobs'))]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
