"""Clean-room grading harness: the only interpreter that runs a submission, inside the sandbox.

Started as ``python -I harness.py IN_FD OUT_FD`` by tools/autograde/runner.py. No IPython: no ``In``/``Out``/
``_ih``, no input transformers, no ``pre_run_cell`` hooks, no ``set_custom_exc``, no displayhook. Order:

1. read the HELLO message (session key, plan of cells, limits); install a ``sys.addaudithook`` hook (it cannot be
   removed) that, once guarding starts, denies frame access, tracing, ``gc`` introspection, ``ctypes``, new
   programs (``exec``/``spawn``/``system``/``Popen``), sockets, further audit hooks, and writes outside the
   scratch folder;
2. import the libraries the notebook uses and snapshot the dicts of every loaded module and of their
   pure-Python classes (and ``builtins``);
3. run the cells in order: student cells as written, locked cells from the pristine source the parent sent.
   A test cell's source and a fresh secret are requested just in time; before it runs, every module attribute
   and class attribute changed since the snapshot is restored, and so is every name a locked cell bound. Its
   verdict (passed iff the test code raised nothing) is sealed with the secret, after signal handlers and
   interval timers were reset and no extra Python thread runs (else: fail closed).

Everything sensitive (keys, secrets, the guard's switch) lives in local variables and closures of ``main``;
module globals hold only functions. This file must not import anything from the course's tree.
"""

import sys


def main() -> None:  # one function on purpose: its locals are the harness's only state
    import _hashlib
    import _thread
    import gc
    import json
    import os
    import resource
    import signal
    import struct

    in_fd, out_fd = int(sys.argv[1]), int(sys.argv[2])
    harness_file = main.__code__.co_filename
    os_read, os_write, hmac_digest, thread_count = os.read, os.write, _hashlib.hmac_digest, _thread._count
    py_exec, py_compile, py_eval, builtins_mod = exec, compile, eval, __builtins__
    isinstance_, getattr_, id_, str_, any_ = isinstance, getattr, id, str, any  # the hook's own builtins
    if not isinstance(builtins_mod, type(sys)):
        import builtins as builtins_mod

    def read_exact(n):
        chunks, got = [], 0
        while got < n:
            chunk = os_read(in_fd, n - got)
            if not chunk:
                os._exit(3)
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    state = {"key": b"", "send_seq": 0, "recv_seq": 0}

    def receive():
        (length,) = struct.unpack(">I", read_exact(4))
        payload, tag = read_exact(length), read_exact(32)
        if hmac_digest(state["key"], b"%d|" % state["recv_seq"] + payload, "sha256") != tag:
            os._exit(4)
        state["recv_seq"] += 1
        return json.loads(payload)

    def send(obj, seal=None):
        payload = json.dumps(obj).encode()
        tag = hmac_digest(state["key"], b"%d|" % state["send_seq"] + payload, "sha256")
        data = struct.pack(">I", len(payload)) + payload + tag + (seal or b"")
        state["send_seq"] += 1
        while data:
            data = data[os_write(out_fd, data) :]

    # --- 1. HELLO: the session key comes first, unauthenticated (nothing else runs yet) -------------------------
    state["key"] = read_exact(32)
    hello = receive()
    limits, plan, scratch = hello["limits"], hello["cells"], hello["scratch"]
    for name, value in limits.get("rlimits", {}).items():
        which = getattr(resource, name, None)
        if which is not None:
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                pass
    os.chdir(scratch)
    sys.path[:0] = [scratch]
    sys.stdin = open(os.devnull)
    sys.dont_write_bytecode = True

    # --- the audit hook --------------------------------------------------------------------------------------
    guard = {"on": False, "frames": False}
    trusted_dicts, locked_functions = set(), set()
    write_ok = tuple(os.path.abspath(p) + os.sep for p in [scratch, "/tmp", "/dev/shm"]) + ("/dev/null",)
    frame_attrs = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
    denied = frozenset(
        {
            "sys._current_frames",
            "function.__new__",
            "sys.settrace",
            "sys.setprofile",
            "gc.get_objects",
            "gc.get_referrers",
            "gc.get_referents",
            "sys.addaudithook",
            "os.system",
            "os.exec",
            "os.spawn",
            "os.posix_spawn",
            "os.forkpty",
            "pty.spawn",
            "subprocess.Popen",
            "socket.__new__",
            "socket.socket",
            "resource.setrlimit",
            "resource.prlimit",
            "sys._getframemodulename",
            "os.startfile",
            "webbrowser.open",
        }
    )
    norm = os.path.normpath

    trusted_prefixes = tuple(p for p in hello.get("trusted_prefixes", []) if p)
    forwarding = set()

    def trusted_file(filename):
        return isinstance_(filename, str) and filename.startswith(trusted_prefixes)

    def check_compile(args):
        source, filename = args[0], args[1]
        filename = os.fsdecode(filename) if isinstance_(filename, (bytes, str)) else filename
        if not trusted_file(filename):
            return
        try:
            with open(filename, "rb") as fh:
                real = fh.read()
        except OSError:
            real = None
        if isinstance_(source, str):
            source = source.encode()
        if real is None or source != real:
            raise ValueError(f"grading sandbox: compiling code under the name {filename} is not allowed")

    busy = {}
    actions = {}
    get_ident, sys_getframe = _thread.get_ident, sys._getframe

    def hook(event, args):
        if not guard["on"]:
            return
        if event in ("sys._getframe", "marshal.loads", "code.__new__", "compile"):
            tid = get_ident()
            if busy.get(tid):
                return
            busy[tid] = True
            try:
                if event == "compile":
                    check_compile(args)
                    return
                if event == "code.__new__":
                    if trusted_file(args[1]):
                        raise ValueError(f"grading sandbox: a code object that claims to come from {args[1]}")
                    return
                frame = sys_getframe(1)
                if event == "marshal.loads":
                    if not str_(frame.f_code.co_filename).startswith("<frozen importlib"):
                        raise ValueError("grading sandbox: marshal.loads is not allowed while grading")
                    return
                # sys._getframe: allowed when the code that asked for the frame (skipping functions that only
                # hand the frame on, like inspect.currentframe) is library code from a read-only folder of the
                # Python installation; its module and classes are restored first, so it runs as shipped.
                while frame is not None and frame.f_code in forwarding:
                    frame = frame.f_back
                if frame is None or not trusted_file(frame.f_code.co_filename):
                    raise ValueError("grading sandbox: sys._getframe is not allowed in submitted code")
                fix = actions.get("restore_module")
                if fix is not None:
                    fix(frame.f_globals)
                return
            finally:
                busy.pop(tid, None)
        if event == "object.__getattr__":
            if args[1] in frame_attrs and not guard["frames"]:
                raise ValueError(f"grading sandbox: access to .{args[1]} is not allowed")
            return
        if event in denied or event.startswith("ctypes."):
            raise ValueError(f"grading sandbox: {event} is not allowed while grading")
        if event == "object.__setattr__":
            target, name = args[0], args[1]
            if name == "__code__" or (
                name in ("__defaults__", "__kwdefaults__")
                and (id_(getattr_(target, "__globals__", None)) in trusted_dicts or id_(target) in locked_functions)
            ):
                raise ValueError(
                    f"grading sandbox: setting {name} of {getattr_(target, '__qualname__', '?')} is not allowed"
                )
            return
        if event == "open":
            path, mode, flags = args
            if isinstance_(path, int) or path is None:
                return
            path = os.fsdecode(path)
            full = norm(path if path.startswith("/") else os.path.join(os.getcwd(), path))
            if full.startswith("/proc/") and full not in (
                "/proc/self/status",
                "/proc/self/stat",
                "/proc/meminfo",
                "/proc/cpuinfo",
                "/proc/self/statm",
                "/proc/stat",
            ):
                parts = full.split("/")
                if len(parts) > 3 and (parts[2] == "self" or parts[2].isdigit()):
                    raise ValueError(f"grading sandbox: opening {full} is not allowed")
            writing = (mode is not None and any_(ch in str_(mode) for ch in "wax+")) or (
                isinstance_(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
            )
            if writing and not (full + os.sep).startswith(write_ok) and full != "/dev/null":
                raise PermissionError(
                    f"grading sandbox: writing {full} is not allowed (write under the current folder or /tmp)"
                )

    sys.addaudithook(hook)

    # --- 2. libraries, figures, snapshot ------------------------------------------------------------------
    import time as time_module

    timings = [("start", time_module.perf_counter())]
    os.environ.setdefault("MPLBACKEND", "Agg")
    preload_errors = []
    for name in hello.get("preload", []):
        try:
            __import__(name)
        except Exception as err:  # a missing optional library is the notebook's problem, reported in its cell
            preload_errors.append(f"{name}: {type(err).__name__}: {err}")
    timings.append(("preload", time_module.perf_counter()))
    try:  # no core dumps, and other processes of this uid cannot read this one's memory (/proc/PID/mem, ptrace)
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass
    figures = []
    plt = sys.modules.get("matplotlib.pyplot")
    fig_cap = int(limits.get("max_image_bytes", 2_000_000))

    def collect_figures():
        if plt is None:
            return
        import base64
        import io

        for num in list(plt.get_fignums()):
            fig = plt.figure(num)
            buf = io.BytesIO()
            try:
                fig.savefig(buf, format="png", dpi=min(float(fig.dpi), 100.0), bbox_inches="tight")
            except Exception as err:
                figures.append({"output_type": "stream", "name": "stderr", "text": f"figure not saved: {err}\n"})
                continue
            data = buf.getvalue()
            if len(data) > fig_cap:
                figures.append(
                    {
                        "output_type": "stream",
                        "name": "stderr",
                        "text": f"[a figure of {len(data)} bytes was dropped by the grader: limit {fig_cap}]\n",
                    }
                )
            else:
                figures.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/png": base64.b64encode(data).decode(), "text/plain": "<Figure>"},
                    }
                )
        plt.close("all")

    if plt is not None:
        plt.show = py_eval("lambda *a, **k: None", {"__builtins__": {}})  # figures are collected after each cell

    user = type(sys)("__main__")
    user.__dict__["__builtins__"] = builtins_mod
    sys.modules["__main__"] = user
    ns = user.__dict__
    module_snapshot, class_snapshot = [], []
    import warnings

    warnings_ctx = warnings.catch_warnings()
    warnings_ctx.__enter__()
    warnings.simplefilter("ignore")
    skip_sys = {"stdout", "stderr", "stdin", "last_type", "last_value", "last_traceback", "ps1", "ps2"}
    for mod in list(sys.modules.values()):
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict) or mod is user:
            continue
        module_snapshot.append((mod, d, dict(d)))
        trusted_dicts.add(id(d))
        modname = getattr(mod, "__name__", None)
        for value in list(d.values()):
            if (
                isinstance(value, type)
                and getattr(value, "__module__", None) == modname
                and hasattr(value, "__dict__")
                and not isinstance(value.__dict__, dict)
            ):
                try:
                    class_snapshot.append((value, dict(value.__dict__)))
                except Exception:
                    pass
    warnings_ctx.__exit__(None, None, None)  # puts back warnings.filters: take that module's snapshot again
    warnings_ctx = None
    module_snapshot = [
        (m, d, dict(d) if m.__name__ in ("warnings", "_warnings") else saved) for m, d, saved in module_snapshot
    ]
    modules_snapshot = dict(sys.modules)
    builtins_saved = dict(builtins_mod.__dict__)
    meta_path, path_hooks = list(sys.meta_path), list(sys.path_hooks)
    main_thread_count = thread_count()
    default_handlers = {}
    for sig in signal.valid_signals():
        try:
            default_handlers[sig] = signal.getsignal(sig)
        except (ValueError, OSError):
            pass
    setattr_type, delattr_type = type.__setattr__, type.__delattr__
    import inspect as inspect_module
    import logging as logging_module
    import traceback as tb_module

    for fn in (
        inspect_module.currentframe,
        inspect_module.stack,
        inspect_module.getouterframes,
        inspect_module.trace,
        logging_module.currentframe,
        tb_module.walk_stack,
        tb_module.walk_tb,
    ):
        code = getattr(fn, "__code__", None)
        if code is not None:
            forwarding.add(code)
    by_dict = {}
    for mod, d, saved in module_snapshot:
        by_dict[id(d)] = (mod, d, saved, [])
    for cls, saved in class_snapshot:
        entry = by_dict.get(id(getattr(sys.modules.get(getattr(cls, "__module__", "")), "__dict__", None)))
        if entry is not None:
            entry[3].append((cls, saved))

    def restore_module(globals_):
        entry = by_dict.get(id(globals_))
        if entry is None:
            return
        _mod, d, saved, classes = entry
        for k, v in saved.items():
            if d.get(k, restore) is not v:
                d[k] = v
        for cls, saved_cls in classes:
            current = cls.__dict__
            for k, v in saved_cls.items():
                if current.get(k, restore) is not v:
                    try:
                        setattr_type(cls, k, v)
                    except (TypeError, AttributeError):
                        pass

    function_type, method_type = type(restore_module), type(restore_module.__get__(0))
    import functools as functools_module

    partial_type = functools_module.partial
    type_dict = type.__dict__["__dict__"].__get__

    def student_made(obj, depth=0):
        """Is this replacement made by the submission (code from a cell or the scratch folder)? Libraries change
        their own attributes at run time (torch wraps Optimizer.step on first use, torch._dynamo wraps
        torch.manual_seed): those are plain functions from the read-only library folders, or C objects."""
        kind = type(obj)
        if kind is function_type:
            return not trusted_file(obj.__code__.co_filename)
        if kind is method_type and depth < 3:
            return student_made(obj.__func__, depth + 1)
        if kind is partial_type and depth < 3:
            return student_made(obj.func, depth + 1)
        cls = obj if isinstance(obj, type) else kind
        try:
            module = type_dict(cls).get("__module__", "builtins")
        except TypeError:
            return True
        if not isinstance(module, str):
            return True
        if module in ("builtins", "__main__"):
            return module == "__main__"
        source = getattr(sys.modules.get(module), "__file__", None)
        return not (isinstance(source, str) and trusted_file(source))

    def restore(classes):
        """Put back every module and class attribute changed since the snapshot; return what was changed
        (library functions and classes replaced, builtins rebound, methods added to classes)."""
        changed = []
        bd, bsaved = builtins_mod.__dict__, builtins_saved
        for k, v in bsaved.items():  # builtins first, with dict operations only
            if bd.get(k, restore) is not v:
                bd[k] = v
                changed.append("builtins." + k)
        for mod, d, saved in module_snapshot:
            for k, v in saved.items():
                new = d.get(k, restore)
                if new is not v and not (mod is sys and k in skip_sys):
                    d[k] = v
                    if callable(v) and (new is restore or student_made(new)):
                        changed.append(f"{getattr(mod, '__name__', '?')}.{k}")
            if len(d) != len(saved):
                for k in [k for k in d if k not in saved]:
                    if not isinstance(d[k], type(sys)) and not (mod is sys and k in skip_sys):
                        if mod is builtins_mod:
                            changed.append("builtins." + k)
                        del d[k]
        for name, mod in modules_snapshot.items():
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
                changed.append(f"sys.modules[{name!r}]")
        sys.meta_path[:], sys.path_hooks[:] = meta_path, path_hooks
        if classes:
            for cls, saved in class_snapshot:
                current = cls.__dict__
                for k, v in saved.items():
                    new = current.get(k, restore)
                    if new is not v:
                        try:
                            setattr_type(cls, k, v)
                            if callable(v) and student_made(new):
                                changed.append(f"{cls.__module__}.{cls.__qualname__}.{k}")
                        except (TypeError, AttributeError):
                            pass
                if len(current) != len(saved):
                    for k in [k for k in current if k not in saved]:
                        try:
                            if callable(current[k]) and student_made(current[k]):
                                changed.append(f"{cls.__module__}.{cls.__qualname__}.{k}")
                            delattr_type(cls, k)
                        except (TypeError, AttributeError):
                            pass
        return changed

    actions["restore"] = restore
    actions["restore_module"] = restore_module

    def reset_signals():
        for which in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            signal.setitimer(which, 0)
        for sig, handler in default_handlers.items():
            try:
                if signal.getsignal(sig) is not handler:
                    signal.signal(sig, handler)
            except (ValueError, OSError, TypeError):
                pass

    # --- output capture ---------------------------------------------------------------------------------
    max_out = int(limits.get("max_output_chars", 10_000_000))
    per_cell_chars = max(1, max_out // 10)

    # Objects that submitted code can reach (sys.stdout, the SIGALRM handler, plt.show) are built in namespaces of
    # their own, so that their __globals__ lead nowhere near the harness's state.
    capture_ns = {"__builtins__": dict(builtins_mod.__dict__), "__name__": "grader_capture"}
    py_exec(CAPTURE_SOURCE, capture_ns)
    Capture = capture_ns["Capture"]

    class CellTimeoutError(BaseException):
        """Raised inside a cell that ran past the per-cell time limit."""

    alarm_ns = {
        "__builtins__": {},
        "E": CellTimeoutError,
        "message": f"the cell ran longer than {limits.get('cell_timeout', 0)} s (time limit)",
    }
    py_exec("def on_alarm(signum, frame):\n    raise E(message)\n", alarm_ns)
    on_alarm = alarm_ns["on_alarm"]

    def safe_text(obj, limit=2000):
        try:
            text = repr(obj) if not isinstance(obj, BaseException) else str(obj)
        except BaseException as err:  # a hostile __repr__
            text = f"<unprintable: {type(err).__name__}>"
        if not isinstance(text, str):
            text = "<unprintable>"
        return text[:limit]

    def tb_entries(tb, filename_prefix):
        """(cell number, line) of each traceback entry in a cell; the only place frames are read."""
        entries = []
        enabled = gc.isenabled()
        gc.disable()
        guard["frames"] = True
        try:
            depth = 0
            while tb is not None and depth < 200:
                code = tb.tb_frame.f_code
                entries.append((str(code.co_filename), int(tb.tb_lineno), str(code.co_name)))
                tb = tb.tb_next
                depth += 1
        finally:
            guard["frames"] = False
            if enabled:
                gc.enable()
        return [
            e
            for e in entries
            if e[0] != harness_file and (e[0].startswith(filename_prefix) or not e[0].startswith("<"))
        ]

    def error_output(err, sources):
        ename = type(err).__name__
        if isinstance(err, CellTimeoutError):
            ename = "CellTimeoutError"
        evalue = safe_text(err)
        lines = [f"{ename}: {evalue}"]
        tb_lines = ["Traceback (most recent call last):"]
        for filename, lineno, name in tb_entries(err.__traceback__, "Cell In["):
            if filename.startswith("Cell In["):
                number = filename[len("Cell In[") :].split("]")[0]
                src = sources.get(number, "").split("\n")
                text = src[lineno - 1].strip() if 0 < lineno <= len(src) else ""
                tb_lines.append(f"{filename}, line {lineno}\n----> {lineno} {text}")
            else:
                tb_lines.append(f"File {filename}:{lineno}, in {name}")
        return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": tb_lines[-30:] + lines}

    # --- 3. the cells ---------------------------------------------------------------------------------------
    locked_names = {}
    sources = {}
    cell_timeout = float(limits.get("cell_timeout", 120))
    budget = [max_out]
    guard["on"] = True
    timings.append(("snapshot", time_module.perf_counter()))
    send(
        {
            "type": "note",
            "text": "harness ready: "
            + ", ".join(f"{name} {t - timings[0][1]:.1f} s" for name, t in timings[1:])
            + ("; preload errors: " + "; ".join(preload_errors) if preload_errors else ""),
        }
    )

    def run_code(number, source, globals_, is_locked):
        """Compile and run one cell; returns (outputs, error-or-None)."""
        outputs, figures[:] = [], []
        cell_budget = [min(budget[0], per_cell_chars)]  # one cell's flood never hides the next cells' output
        out, err_stream = Capture("stdout", outputs, cell_budget), Capture("stderr", outputs, cell_budget)
        filename = f"Cell In[{number}]"
        sources[str(number)] = source
        error = None
        try:
            try:
                tree = py_compile(source, filename, "exec", 0x400, dont_inherit=True)  # ast.PyCF_ONLY_AST
            except SyntaxError:
                kept = [
                    line if not line.lstrip().startswith(("%", "!")) else "pass  # " + line.strip()
                    for line in source.split("\n")
                ]
                if kept != source.split("\n"):
                    outputs.append(
                        {
                            "output_type": "stream",
                            "name": "stderr",
                            "text": "[grader: IPython magics and shell commands (% and ! lines) are not run]\n",
                        }
                    )
                source = "\n".join(kept)
                sources[str(number)] = source
                tree = py_compile(source, filename, "exec", 0x400, dont_inherit=True)
            import ast

            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            body = py_compile(tree, filename, "exec", dont_inherit=True)
            last_code = py_compile(last, filename, "eval", dont_inherit=True) if last is not None else None
            sys.stdout, sys.stderr = out, err_stream
            before = {k: v for k, v in globals_.items()} if is_locked else None
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, cell_timeout)
            try:
                py_exec(body, globals_)
                if last_code is not None:
                    value = py_eval(last_code, globals_)
                    if value is not None:
                        outputs.append(
                            {
                                "output_type": "execute_result",
                                "metadata": {},
                                "data": {"text/plain": safe_text(value, 20_000)},
                                "execution_count": number,
                            }
                        )
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if is_locked:
                for k, v in globals_.items():
                    if before.get(k, before) is not v:
                        locked_names[k] = v
                        if callable(v) and hasattr(v, "__code__"):
                            locked_functions.add(id(v))
        except BaseException as exc:  # noqa: B902 (everything a cell raises is its own result)
            signal.setitimer(signal.ITIMER_REAL, 0)
            error = exc
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        try:
            collect_figures()
        except BaseException:
            pass
        budget[0] -= min(budget[0], per_cell_chars) - cell_budget[0]
        outputs.extend(figures)
        if error is not None:
            outputs.append(error_output(error, sources))
        return outputs, error

    for cell in plan:
        index, kind = cell["index"], cell["kind"]
        number = index + 1
        if cell.get("skip"):
            continue
        if kind == "test":
            send({"type": "need", "cell": index})
            reply = receive()
            secret = bytes.fromhex(reply["secret"])
            source = reply["source"]
            restore(True)
            reset_signals()
            for k, v in locked_names.items():
                ns[k] = v
            ns["__builtins__"] = builtins_mod
            test_globals = dict(ns)
            for k in list(test_globals):
                if hasattr(builtins_mod, k) and k not in locked_names and not k.startswith("__"):
                    del test_globals[k]  # a student global named `all`, `len`, `float`... is not seen
            reply = None
            outputs, error = run_code(number, source, test_globals, False)
            source = None
            tampered = restore(True)
            reset_signals()
            passed = error is None
            reason = "" if passed else f"{type(error).__name__}: {safe_text(error, 300)}"
            error = None
            tampered += [
                k
                for k, v in locked_names.items()
                if (callable(v) or isinstance(v, type(sys))) and test_globals.get(k, test_globals) is not v
            ]
            if tampered and passed:
                passed = False
                reason = "the submission replaced library code while the test ran (fail closed): " + ", ".join(
                    sorted(set(tampered))[:10]
                )
                outputs.append(
                    {"output_type": "error", "ename": "GradingTampering", "evalue": reason, "traceback": [reason]}
                )
            if passed and thread_count() > main_thread_count:
                passed, reason = False, "threads started by the submission were still running (fail closed)"
            for k, v in test_globals.items():
                if ns.get(k, ns) is not v and not k.startswith("__"):
                    ns[k] = v
            test_globals = None
            seq = state["send_seq"]
            seal = hmac_digest(secret, b"verdict|%d|%d|%d" % (seq, index, int(passed)), "sha256")
            secret = None
            send({"type": "verdict", "cell": index, "passed": passed, "reason": reason, "outputs": outputs}, seal)
        else:
            reset_signals()
            outputs, error = run_code(number, cell["source"], ns, kind == "locked")
            restore(False)
            send(
                {
                    "type": "done",
                    "cell": index,
                    "outputs": outputs,
                    "error": None if error is None else type(error).__name__,
                }
            )
    send({"type": "end"})
    sys.stdout.flush()
    os._exit(0)


CAPTURE_SOURCE = 'class Capture:\n    """sys.stdout / sys.stderr while a cell runs: a list of Jupyter stream outputs, size-capped."""\n\n    def __init__(self, name, outputs, budget):\n        self.name, self.outputs, self.budget, self.encoding = name, outputs, budget, "utf-8"\n\n    def write(self, text):\n        text = str(text)\n        if self.budget[0] <= 0:\n            return len(text)\n        kept = text[: self.budget[0]]\n        self.budget[0] -= len(kept)\n        if self.budget[0] <= 0:\n            kept += "\\n[... output cut by the grader: limit reached]\\n"\n        if self.outputs and self.outputs[-1].get("name") == self.name and self.outputs[-1]["output_type"] == "stream":\n            self.outputs[-1]["text"] += kept\n        else:\n            self.outputs.append({"output_type": "stream", "name": self.name, "text": kept})\n        return len(text)\n\n    def flush(self):\n        pass\n\n    def isatty(self):\n        return False\n\n    def fileno(self):\n        raise OSError("no file descriptor while grading")\n\n'


if __name__ == "__main__":
    # The harness's functions get a private copy of the builtins: a submission that rebinds builtins.isinstance
    # (or any other builtin) changes what its own code and the tests see (restored before each test), never
    # what the harness sees.
    import builtins

    private = {
        "__builtins__": dict(builtins.__dict__),
        "__name__": "grader_harness",
        "__file__": __file__,
        "CAPTURE_SOURCE": CAPTURE_SOURCE,
    }
    with open(__file__, encoding="utf-8") as _fh:
        exec(compile(_fh.read(), __file__, "exec"), private)
    del _fh
    private["main"]()
