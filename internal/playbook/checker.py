# checker.py: static checks of a playbook bundle's Python files, embedded
# in the gateway (validate.go) and run as `python -I -S -c <this file>`.
#
# It only parses: ast.parse builds a syntax tree and never executes the
# code; nothing of the bundle is imported or run.
#
# The gateway starts it with limits (address space, CPU time, no new
# processes, no core files, a low priority) and writes the bundle on stdin
# only once they hold, so a file built to blow up the parser ends in a
# MemoryError or RecursionError caught here, or in the kernel stopping
# this process, which the gateway then reports.
#
# stdin:  {"files": [{"path": "playbook.py", "source": "..."}, ...],
#          "main": "playbook.py",
#          "allowed": ["json", "re", "helpers", ...]}
#         allowed: the top-level module names that may be imported (the
#         standard library, the bundle's own modules, playbook_sdk).
# stdout: {"errors": [{"path", "line", "message"[, "reason"]}],
#          "warnings": [{"path", "line", "message"}]}
#         reason marks a file too complex to check: "memory" (a
#         MemoryError at the address-space limit), "recursion" (a
#         RecursionError) or "nesting" (one of the parser's own nesting
#         limits: a SyntaxError such as "too many nested parentheses", or
#         its stack overflowing); message is then Python's words, which the
#         gateway puts into its own sentence.
# stderr: "checking: <path as JSON>" before each file, so that the gateway
#         can name the file it was on when the process was stopped.
import ast
import json
import sys
import warnings

try:
    import resource
except ImportError:  # not on Unix
    resource = None

MAX_PER_FILE = 50
MAX_TOTAL = 500      # problems of each sort in all
MAX_MESSAGE = 400    # characters of a message
MAX_NAME = 100       # characters of a module name quoted in a message

# SyntaxError messages of the parser's own nesting limits: the file is not
# wrong so much as too deeply nested to be checked.
NESTING_LIMITS = (
    "too many nested parentheses",
    "too many levels of indentation",
    "too many nested f-strings",
    "f-string: expressions nested too deeply",
)


def clip(s, n):
    return s if len(s) <= n else s[:n] + "..."


def problem(path, line, message, reason=None):
    p = {"path": path, "line": line or 0, "message": clip(message, MAX_MESSAGE)}
    if reason:
        p["reason"] = reason
    return p


def too_complex(path, line, reason, detail):
    return problem(path, line, detail, reason)


def peak_rss():
    """This process's peak resident memory in bytes (VmHWM), or None.
    (Not getrusage's ru_maxrss: that keeps the peak of the process before
    its exec, the gateway's.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, MemoryError):
        pass
    return None


def memory_error(path, e):
    """The problem of a MemoryError: the parser's own stack limit (the
    file nests too deeply), or the address-space limit (it is too big)."""
    msg = str(e)
    if msg.startswith("Parser stack overflowed"):
        return too_complex(path, 0, "nesting", msg)
    if not msg and resource is not None:
        # Python 3.10 and 3.11 raise a bare MemoryError for both; the
        # parser's stack is small, so a peak far below the limit means it.
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        peak = peak_rss()
        if limit != resource.RLIM_INFINITY and peak is not None and peak < limit // 4:
            return too_complex(path, 0, "nesting", "the parser's stack overflowed")
    return too_complex(path, 0, "memory", msg or "MemoryError")


def parse(path, source):
    """Returns (tree, errors, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            tree = ast.parse(source, filename=path)
        except SyntaxError as e:
            line = e.lineno or 0
            msg = str(e.msg)
            if any(msg.startswith(m) for m in NESTING_LIMITS):
                return None, [too_complex(path, line, "nesting", msg)], []
            return None, [problem(path, line, "syntax error: %s" % msg)], []
        except RecursionError as e:
            return None, [too_complex(path, 0, "recursion", str(e) or "RecursionError")], []
        except MemoryError as e:
            return None, [memory_error(path, e)], []
        except ValueError as e:  # NUL bytes
            return None, [problem(path, 0, "the code cannot be parsed: %s" % e)], []
    found = []
    for w in caught:
        if issubclass(w.category, (SyntaxWarning, DeprecationWarning)):
            line = w.lineno if w.filename == path else 0
            found.append(problem(path, line, str(w.message)))
    return tree, [], found


def check_imports(path, tree, allowed):
    errors = []
    # Names bound to importlib and to importlib.import_module in this file.
    importlib_names = {"importlib"}
    import_module_names = set()
    nodes = list(ast.walk(tree))  # breadth first: a call before its func
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "importlib":
                    importlib_names.add(a.asname or "importlib")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "importlib":
            for a in node.names:
                if a.name == "import_module":
                    import_module_names.add(a.asname or "import_module")

    def check_name(node, name, how):
        if not name or name.startswith("."):
            return  # relative: a module of the bundle
        top = name.split(".")[0]
        if top not in allowed:
            errors.append(problem(path, node.lineno,
                "%s %r, which is neither in the standard library nor a module of this playbook; "
                "a playbook may import only the standard library and its own modules" % (how, clip(name, MAX_NAME))))

    def is_importer(func):
        """'__import__' or 'import_module' when func names one, else None."""
        if isinstance(func, ast.Name):
            if func.id == "__import__":
                return "__import__"
            if func.id in import_module_names:
                return "import_module"
        elif isinstance(func, ast.Attribute):
            if func.attr == "__import__":
                return "__import__"
            if func.attr == "import_module" and isinstance(func.value, ast.Name) \
                    and func.value.id in importlib_names:
                return "import_module"
        return None

    def dynamic(node, what):
        errors.append(problem(path, node.lineno,
            "dynamic import: %s is used with a module name computed at run time, "
            "which cannot be checked; use an import statement" % what))

    called = set()  # ids of func nodes of handled calls
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                check_name(node, a.name, "imports")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                check_name(node, node.module, "imports from")
        elif isinstance(node, ast.Call):
            kind = is_importer(node.func)
            if kind:
                called.add(id(node.func))
                arg = node.args[0] if node.args else None
                if arg is None:
                    for k in node.keywords:
                        if k.arg == "name":
                            arg = k.value
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    check_name(node, arg.value, "%s() imports" % kind)
                else:
                    dynamic(node, kind + "()")
            elif isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
                a = node.args[1]
                if isinstance(a, ast.Constant) and a.value in ("__import__", "import_module"):
                    dynamic(node, "getattr(..., %r)" % a.value)
        elif id(node) not in called and is_importer(node) and isinstance(getattr(node, "ctx", None), ast.Load):
            dynamic(node, is_importer(node))
    return errors


def check_run(path, tree):
    errors, warns = [], []
    runs = [n for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "run"]
    if not runs:
        errors.append(problem(path, 0,
            "defines no module-level function run(alert, ctx); the runtime calls playbook.py:run"))
        return errors, warns
    fn = runs[-1]
    if len(runs) > 1:
        warns.append(problem(path, fn.lineno,
            "run is defined %d times; only the last definition is used" % len(runs)))
    if isinstance(fn, ast.AsyncFunctionDef):
        errors.append(problem(path, fn.lineno,
            "run is defined with async def; it must be a plain def run(alert, ctx)"))
    a = fn.args
    positional = [p.arg for p in a.posonlyargs + a.args]
    if positional != ["alert", "ctx"] or a.vararg or a.kwarg or a.kwonlyargs:
        params = list(positional)
        if a.vararg:
            params.append("*" + a.vararg.arg)
        elif a.kwonlyargs:
            params.append("*")
        params += [p.arg for p in a.kwonlyargs]
        if a.kwarg:
            params.append("**" + a.kwarg.arg)
        errors.append(problem(path, fn.lineno,
            "run must take exactly two positional parameters, (alert, ctx); it takes (%s)"
            % ", ".join(params)))
    return errors, warns


def check_file(path, source, allowed, main):
    """Returns (errors, warnings) of one file."""
    tree, errors, warns = parse(path, source)
    if tree is not None:
        errors += check_imports(path, tree, allowed)
        if path == main:
            e, w = check_run(path, tree)
            errors += e
            warns += w
    return errors, warns


def main():
    req = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    allowed = set(req["allowed"])
    out = {"errors": [], "warnings": []}
    for f in req["files"]:
        path, source = f["path"], f["source"]
        f["source"] = None
        sys.stderr.write("checking: %s\n" % json.dumps(path))
        sys.stderr.flush()
        try:
            errors, warns = check_file(path, source, allowed, req["main"])
        except RecursionError as e:
            errors, warns = [too_complex(path, 0, "recursion", str(e) or "RecursionError")], []
        except MemoryError as e:
            errors, warns = [memory_error(path, e)], []
        del source
        out["errors"] += errors[:MAX_PER_FILE]
        out["warnings"] += warns[:MAX_PER_FILE]
    out["errors"] = out["errors"][:MAX_TOTAL]
    out["warnings"] = out["warnings"][:MAX_TOTAL]
    sys.stdout.buffer.write(json.dumps(out).encode("utf-8"))


main()
