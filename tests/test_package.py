"""The package's layout is its pipeline: a module imports only from its own stage or lower ones
(layers -> models -> train -> optimize -> schedule -> export -> tflm -> firmware -> profile -> the commands),
read from every import statement in the source, function-local ones included."""

import ast
import pathlib

import nlpool_keras

PACKAGE = pathlib.Path(nlpool_keras.__file__).parent
# the stage of each top-level module or subpackage; helpers that import nothing of the package first
STAGES = {
    "frameworks": 0,
    "tf_ops": 0,
    "quiet": 0,
    "data": 1,
    "detection": 1,
    "layers": 1,
    "models": 2,
    "train": 3,
    "optimize": 4,
    "loading": 4,
    "schedule": 5,
    "export": 6,
    "tflm": 7,
    "firmware": 8,
    "profile": 9,
    "demo": 10,
    "cli": 11,
}


def _imported_parts(tree, path):
    """The package's top-level modules or subpackages that `tree` (of `path`) imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the package imports by absolute names"
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "nlpool_keras":
                yield from [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "nlpool_keras":
                    assert len(parts) > 1, f"{path}: import nlpool_keras inside the package; import the stage"
                    yield parts[1]


def test_every_module_has_a_stage():
    parts = {path.stem for path in PACKAGE.glob("*.py")} | {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert parts - {"__init__"} == set(STAGES)


def test_no_stage_imports_a_later_one():
    later = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative == pathlib.Path("__init__.py"):
            continue  # the public API gathers every stage
        own = relative.parts[0].removesuffix(".py")
        for imported in _imported_parts(ast.parse(path.read_text()), relative):
            assert imported in STAGES, f"{relative} imports nlpool_keras.{imported}, which has no stage here"
            if STAGES[imported] > STAGES[own]:
                later.append(f"{relative} imports nlpool_keras.{imported}")
    assert not later, later
