"""Architectural patterns already present in the code, so new work reuses them.

Detection is static: each call's target is resolved through the module's
imports (``mp.Process`` -> ``multiprocessing.Process``) and matched against a
small catalogue of regular expressions; classes and functions are matched by
shape (a cached ``_instance``, a ``global`` lazily assigned, ``create_*``
returning a new object). ``similar`` reuses ``similarity.similar_functions``.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass

from codetools.sources import ParsedModule
from codetools.symbols import (
    MODULE_SCOPE,
    base_names,
    has_decorator,
    import_aliases,
    qualified_name,
    walk_scoped,
)

CATEGORIES = ("ipc", "process", "clientserver", "similar", "structural")

# (category, label, regex over the resolved call target)
CALL_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (category, label, re.compile(pattern))
    for category, label, pattern in (
        (
            "ipc",
            "socket",
            r"^socket\.(socket|create_connection|create_server|socketpair|fromfd)$|^socketserver\.",
        ),
        ("ipc", "grpc", r"^grpc\.|tritonclient\.grpc"),
        ("ipc", "queue", r"(^|\.)(Queue|SimpleQueue|JoinableQueue|PriorityQueue|LifoQueue)$"),
        ("ipc", "pipe", r"(^|\.)Pipe$|^os\.(pipe|mkfifo)$"),
        (
            "ipc",
            "shared memory",
            r"SharedMemory$|ShareableList$|^multiprocessing\.(Value|Array|RawValue|RawArray)$|^mmap\.mmap$",
        ),
        ("ipc", "manager", r"^multiprocessing\.(Manager|managers\.\w+)$|get_context\(\)\.Manager$"),
        (
            "ipc",
            "http",
            r"^(requests|httpx)\.(get|post|put|patch|delete|head|request|stream|Client|AsyncClient|Session)$|^aiohttp\.ClientSession$|^urllib\.request\.(urlopen|Request)$|^http\.client\.HTTPS?Connection$",
        ),
        ("ipc", "message broker", r"^(zmq|redis|pika|kafka|nats)\."),
        (
            "ipc",
            "file lock / temp file",
            r"^fcntl\.(flock|lockf)$|^filelock\.|^tempfile\.(NamedTemporaryFile|mkstemp|mkdtemp)$",
        ),
        (
            "process",
            "process",
            r"^multiprocessing\.(Process|Pool)$|(context|ctx|get_context\(\))\.(Process|Pool)$|ProcessPoolExecutor$",
        ),
        ("process", "start method", r"^multiprocessing\.(set_start_method|get_context)$"),
        (
            "process",
            "thread",
            r"^threading\.(Thread|Timer)$|ThreadPoolExecutor$|^asyncio\.to_thread$|\.run_in_executor$",
        ),
        (
            "process",
            "subprocess",
            r"^subprocess\.\w+$|^os\.(system|popen|fork|kill|exec\w*|spawn\w*)$|^asyncio\.create_subprocess_\w+$",
        ),
        (
            "process",
            "sync primitive",
            r"^(threading|multiprocessing|asyncio)\.(Lock|RLock|Event|Condition|Semaphore|BoundedSemaphore|Barrier)$|get_context\(\)\.(Lock|RLock|Event|Condition|Semaphore|Barrier)$",
        ),
        (
            "process",
            "async task",
            r"^asyncio\.(create_task|gather|wait_for|wait|run|TaskGroup|ensure_future)$",
        ),
        ("process", "lifecycle hook", r"^signal\.signal$|^atexit\.register$"),
        (
            "clientserver",
            "server",
            r"^fastapi\.(FastAPI|APIRouter)$|^uvicorn\.(run|Server|Config)$|^grpc\.(aio\.)?server$|add_\w+Servicer_to_server$|^http\.server\.|^socketserver\.\w+Server$|^flask\.Flask$|^aiohttp\.web\.|^socket\.create_server$",
        ),
        (
            "clientserver",
            "client connection",
            r"^grpc\.(aio\.)?(insecure|secure)_channel$|InferenceServerClient$|^httpx\.(Async)?Client$|^requests\.Session$|^socket\.create_connection$|^aiohttp\.ClientSession$",
        ),
    )
)
_ROUTE_VERBS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "websocket", "route", "api_route"}
)
_CLASS_ROLES = (
    ("server class", re.compile(r"(Server|Servicer|Handler|Service|Gateway)$")),
    ("client class", re.compile(r"(Client|Stub|Proxy|Connection)$")),
)
_FACTORY_NAME = re.compile(r"^(create|make|build|new)_\w+$|^from_\w+$")


@dataclass(frozen=True)
class Finding:
    """One pattern instance: category, label, where, and what matched."""

    category: str
    label: str
    module: ParsedModule
    lineno: int
    scope: str
    detail: str

    @property
    def location(self) -> str:
        return f"{self.module.display}:{self.lineno}"


def _scan_calls(module: ParsedModule) -> list[Finding]:
    aliases = import_aliases(module)
    found = []
    for node, scope in walk_scoped(module.tree):
        if not isinstance(node, ast.Call):
            continue
        target = qualified_name(node.func, aliases)
        if target is None:
            continue
        for category, label, rule in CALL_RULES:
            if rule.search(target):
                found.append(Finding(category, label, module, node.lineno, scope, target))
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("bind", "listen", "accept"):
            if "sock" in ast.unparse(node.func.value).lower():
                found.append(Finding("clientserver", "listening socket", module, node.lineno, scope, target))
    return found


def _scan_definitions(module: ParsedModule) -> list[Finding]:
    found = []
    aliases = import_aliases(module)
    for node, scope in walk_scoped(module.tree):
        if isinstance(node, ast.ClassDef):
            found.extend(_class_findings(module, node, scope, aliases))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.extend(_function_findings(module, node, scope))
    return found


def _class_findings(
    module: ParsedModule, node: ast.ClassDef, scope: str, aliases: dict[str, str]
) -> list[Finding]:
    found = []
    bases = {qualified_name(base, aliases) or "" for base in node.bases}
    for base in bases:
        if re.search(r"(^|\.)Process$", base) and "multiprocessing" in base:
            found.append(
                Finding(
                    "process", "process subclass", module, node.lineno, scope, f"class {node.name}({base})"
                )
            )
        if base == "threading.Thread":
            found.append(
                Finding(
                    "process", "thread subclass", module, node.lineno, scope, f"class {node.name}({base})"
                )
            )
    for label, rule in _CLASS_ROLES:
        if rule.search(node.name):
            found.append(Finding("clientserver", label, module, node.lineno, scope, f"class {node.name}"))
    class_vars = {
        target.id
        for statement in node.body
        if isinstance(statement, ast.Assign | ast.AnnAssign)
        for target in (statement.targets if isinstance(statement, ast.Assign) else [statement.target])
        if isinstance(target, ast.Name)
    }
    methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}
    if "_instance" in class_vars or ("__new__" in methods and any("_instance" in c for c in class_vars)):
        found.append(
            Finding(
                "structural", "singleton", module, node.lineno, scope, f"class {node.name} caches _instance"
            )
        )
    elif "__call__" in methods and "type" in base_names(node):
        found.append(
            Finding("structural", "singleton", module, node.lineno, scope, f"metaclass {node.name}.__call__")
        )
    if "ABC" in base_names(node) or any(
        isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and has_decorator(item, "abstractmethod")
        for item in node.body
    ):
        found.append(Finding("structural", "abstract base", module, node.lineno, scope, f"class {node.name}"))
    if "Protocol" in base_names(node):
        found.append(
            Finding("structural", "protocol (interface)", module, node.lineno, scope, f"class {node.name}")
        )
    return found


def _function_findings(
    module: ParsedModule, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: str
) -> list[Finding]:
    found = []
    returns_new = any(
        isinstance(child, ast.Return) and isinstance(child.value, ast.Call) for child in ast.walk(node)
    )
    if _FACTORY_NAME.match(node.name) and returns_new:
        label = "alternate constructor" if has_decorator(node, "classmethod") else "factory"
        found.append(Finding("structural", label, module, node.lineno, scope, f"def {node.name}"))
    globals_assigned = {
        name for child in ast.walk(node) if isinstance(child, ast.Global) for name in child.names
    }
    if globals_assigned and any(
        isinstance(child, ast.If)
        and isinstance(child.test, ast.Compare)
        and "None" in ast.unparse(child.test)
        and any(isinstance(n, ast.Name) and n.id in globals_assigned for n in ast.walk(child.test))
        for child in ast.walk(node)
    ):
        detail = f"def {node.name} lazily creates global {', '.join(sorted(globals_assigned))}"
        found.append(Finding("structural", "singleton", module, node.lineno, scope, detail))
    if has_decorator(node, "lru_cache", "cache") and not (
        node.args.args or node.args.posonlyargs or node.args.kwonlyargs
    ):
        found.append(
            Finding(
                "structural", "singleton", module, node.lineno, scope, f"def {node.name} cached, no arguments"
            )
        )
    for decorator in node.decorator_list:
        if (
            isinstance(decorator, ast.Call)
            and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr in _ROUTE_VERBS
            and decorator.args
            and isinstance(decorator.args[0], ast.Constant)
            and str(decorator.args[0].value).startswith("/")
        ):
            route = f"{decorator.func.attr.upper()} {decorator.args[0].value!s} -> {node.name}"
            found.append(Finding("clientserver", "route", module, decorator.lineno, scope, route))
    return found


def _registries(module: ParsedModule) -> list[Finding]:
    """Module-level dicts mapping string keys to names (classes or functions): a lookup registry."""
    found = []
    for node in module.tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        value = node.value
        if isinstance(value, ast.Dict) and len(value.keys) >= 2:
            keys_are_strings = all(
                isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys
            )
            values_are_names = all(isinstance(v, ast.Name | ast.Attribute) for v in value.values)
            if keys_are_strings and values_are_names:
                name = ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target)
                detail = f"{name}: {len(value.keys)} entries"
                found.append(Finding("structural", "registry", module, node.lineno, MODULE_SCOPE, detail))
    return found


def detect(modules: list[ParsedModule], categories: tuple[str, ...] = CATEGORIES) -> list[Finding]:
    """All findings in the requested categories (``similar`` is reported separately)."""
    found: list[Finding] = []
    for module in modules:
        found.extend(_scan_calls(module))
        found.extend(_scan_definitions(module))
        found.extend(_registries(module))
    return sorted(
        (finding for finding in found if finding.category in categories),
        key=lambda finding: (
            CATEGORIES.index(finding.category),
            finding.label,
            finding.module.display,
            finding.lineno,
        ),
    )


def format_findings(findings: list[Finding], categories: tuple[str, ...]) -> list[str]:
    """Grouped by category then label, one ``file:line  detail  in scope`` line each."""
    grouped: dict[str, dict[str, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for finding in findings:
        grouped[finding.category][finding.label].append(finding)
    lines = []
    for category in categories:
        if category == "similar":
            continue
        lines.append(f"== {category} ==")
        if not grouped[category]:
            lines.append("  (none found)")
        for label, items in sorted(grouped[category].items()):
            lines.append(f"{label} ({len(items)})")
            lines.extend(f"  {item.location}  {item.detail}  in {item.scope}" for item in items)
        lines.append("")
    return lines
