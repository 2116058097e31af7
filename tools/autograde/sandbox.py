"""An OS sandbox for one submission: its own scratch folder, no network, a minimal file-system view, another user,
resource limits, and every process it started killed when it ends.

Modes, chosen by :func:`detect_mode` (the strongest available):

``namespaces`` (Linux, root)
    ``unshare --net --mount --pid --ipc --uts --fork --kill-child`` runs a small shell as PID 1 of new
    namespaces. It builds a new root on a tmpfs that holds read-only binds of only what grading needs
    (system folders, the Python installation, the virtual environment, course_utils and the harness), a
    private ``/tmp`` and ``/dev/shm``, a new ``/proc`` and the scratch folder as ``/submission``; then
    ``pivot_root`` into it and drops to an unprivileged uid (``setpriv``, no new privileges, no
    capabilities) with rlimits (``prlimit``). The course folder, ``solutions/``, the gradebook, other
    submissions and the instructor's home simply do not exist in that view. No network namespace has an
    interface but ``lo``. When PID 1 (the harness) exits or is killed, the kernel kills every process
    of the namespace: nothing outlives grading.
``userns`` (Linux, not root, user namespaces allowed)
    The same with ``unshare --user --map-root-user``; there is no second uid to switch to (the harness
    runs as the instructor's uid mapped to root in the namespace, which has no power outside it).
``plain`` (macOS, other systems, or Linux without namespaces)
    rlimits and a new session (the process group is killed at the end) only. Student code can read every
    file the instructor can read, use the network, and leave processes that escaped the group. A warning says so.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

HARNESS = Path(__file__).with_name("harness.py")
INSIDE_SUBMISSION = "/submission"
INSIDE_HARNESS = "/grader/harness.py"
PLAIN_WARNING = (
    "tools.autograde: no Linux namespaces available ({why}); grading falls back to rlimits and a "
    "process group. NOT defended in this mode: reading the course folder (solutions/, gradebook.db, "
    "other submissions), network access, processes that leave the process group. Grade on Linux as "
    "root (or with user namespaces) for the full sandbox; see docs/grading-security.md."
)


@dataclass
class Limits:
    """Resource limits of one submission (nbgrader_config.py: ``c.SandboxedExecute.<name>``)."""

    memory_bytes: int = 6 * 1024**3  # RLIMIT_DATA (heap + anonymous mappings); RLIMIT_AS breaks CUDA
    max_processes: int = 64  # RLIMIT_NPROC of the submission's own uid
    max_file_bytes: int = 50 * 1024**2  # RLIMIT_FSIZE: largest file it may write
    max_output_chars: int = 10_000_000  # all text outputs of the notebook together
    max_image_bytes: int = 2_000_000  # one figure (PNG)
    cell_timeout: float = 120.0  # s per cell (then CellTimeoutError in that cell)
    wall_timeout: float = 20 * 60.0  # s per submission, all restarts together
    cpu_seconds: int = 40 * 60  # RLIMIT_CPU of the harness process
    tmp_bytes: int = 1024**3  # size of the private /tmp and /dev/shm
    max_restarts: int = 6  # fresh sandboxes after crashes before the rest scores 0
    grace_s: float = 20.0  # after cell_timeout, before a cell that ignores the interrupt is killed
    startup_s: float = 240.0  # harness start and library imports (torch) on a busy machine
    devices: tuple[str, ...] = ()  # device nodes bound into the sandbox's /dev (full-mode grading: /dev/nvidia*)

    def rlimits(self) -> dict[str, int]:
        return {
            "RLIMIT_DATA": self.memory_bytes,
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_FSIZE": self.max_file_bytes,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_CORE": 0,
        }

    def for_harness(self) -> dict:
        return {**asdict(self), "rlimits": self.rlimits()}


@dataclass
class Mounts:
    """What the sandbox sees besides system folders: read-only binds (same path inside) and the venv."""

    read_only: list[str] = field(default_factory=list)


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, check=False, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_MODE: dict[str, str] = {}


def detect_mode(force: str | None = None) -> str:
    """``namespaces``, ``userns`` or ``plain`` (cached). ``AUTOGRADE_SANDBOX`` or ``force`` overrides."""
    force = force or os.environ.get("AUTOGRADE_SANDBOX")
    if force:
        return force
    if "mode" in _MODE:
        return _MODE["mode"]
    mode, why = "plain", "not Linux"
    if sys.platform.startswith("linux"):
        tools = [shutil.which(t) for t in ("unshare", "setpriv", "prlimit", "pivot_root")]
        if not all(tools):
            why = "util-linux tools unshare/setpriv/prlimit/pivot_root missing"
        elif os.geteuid() == 0 and _works(["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "true"]):
            mode = "namespaces"
        elif _works(["unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "true"]):
            mode = "userns"
        else:
            why = "unshare is not permitted here"
    if mode == "plain":
        warnings.warn(PLAIN_WARNING.format(why=why), RuntimeWarning, stacklevel=2)
        print(PLAIN_WARNING.format(why=why), file=sys.stderr)
    _MODE["mode"] = mode
    return mode


def course_utils_dir() -> str:
    """Folder of the installed course_utils package (found without importing it: that would load torch)."""
    import importlib.util

    spec = importlib.util.find_spec("course_utils")
    if spec is None or not spec.origin:
        raise RuntimeError("course_utils is not installed in this environment: run `make setup` (pip install -e .)")
    return os.path.dirname(os.path.realpath(spec.origin))


def python_paths() -> list[str]:
    """Folders the harness's Python needs: the installation, the venv, editable installs (course_utils)."""
    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    paths.add(course_utils_dir())
    return sorted(paths)


def _init_script(
    root: str,
    scratch: str,
    uid: int,
    limits: Limits,
    extra_ro: list[str],
    userns: bool,
    env: dict[str, str],
    argv: list[str],
) -> str:
    """Shell run as PID 1 of the new namespaces: build the new root, pivot into it, drop privileges, exec."""
    q = shlex.quote
    lines = ["set -e", f"R={q(root)}", 'mount -t tmpfs -o mode=755,size=64m tmpfs "$R"']
    system = [p for p in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc") if os.path.exists(p)]
    for path in system + extra_ro:
        if os.path.islink(path) and path in system:
            lines.append(f'ln -s {q(os.readlink(path))} "$R"{q(path)}')
            continue
        lines += [
            f'mkdir -p "$R"{q(path)}',
            f'mount --rbind {q(path)} "$R"{q(path)}',
            f'mount -o remount,bind,ro,nosuid,nodev "$R"{q(path)} 2>/dev/null || true',
        ]
    lines += ['mkdir -p "$R/dev" "$R/proc" "$R/tmp" "$R/dev/shm" "$R"' + q(INSIDE_SUBMISSION) + ' "$R/grader"']
    for dev in ("null", "zero", "full", "random", "urandom"):
        lines += [f'touch "$R/dev/{dev}"', f'mount --bind /dev/{dev} "$R/dev/{dev}"']
    for dev in limits.devices:  # only what the configuration names (a GPU for full-mode grading)
        if dev.startswith("/dev/") and "/" not in dev[5:] and os.path.exists(dev) and not os.path.isdir(dev):
            lines += [f'touch "$R"{q(dev)}', f'mount --bind {q(dev)} "$R"{q(dev)}']
    lines += [
        f'mount -t tmpfs -o mode=1777,size={limits.tmp_bytes},nosuid,nodev tmpfs "$R/tmp"',
        f'mount -t tmpfs -o mode=1777,size={limits.tmp_bytes},nosuid,nodev tmpfs "$R/dev/shm"',
        'mount -t proc -o nosuid,nodev,noexec proc "$R/proc"',
        f'mount --bind {q(scratch)} "$R"{q(INSIDE_SUBMISSION)}',
        f'touch "$R"{q(INSIDE_HARNESS)}',
        f'mount --bind {q(str(HARNESS))} "$R"{q(INSIDE_HARNESS)}',
        f'mount -o remount,bind,ro "$R"{q(INSIDE_HARNESS)}',
        'mount -o remount,ro "$R"',
        'cd "$R"',
    ]
    lines.insert(3, 'mkdir -p "$R/.old"')  # before the new root becomes read-only
    lines += ["pivot_root . .old", "cd /", "umount -l /.old"]
    envs = " ".join(q(f"{k}={v}") for k, v in env.items())
    rl = limits.rlimits()
    prlimit = (
        f"prlimit --data={rl['RLIMIT_DATA']} --nproc={rl['RLIMIT_NPROC']} --fsize={rl['RLIMIT_FSIZE']} "
        f"--cpu={rl['RLIMIT_CPU']} --core=0 --"
    )
    drop = (
        ""
        if userns
        else (
            f"setpriv --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs --"
        )
    )
    lines.append(f"exec env -i {envs} {drop} {prlimit} {' '.join(q(a) for a in argv)}")
    return "\n".join(lines)


@dataclass
class Sandbox:
    """One sandboxed harness process; :meth:`start` returns the Popen, :meth:`close` kills and cleans up."""

    limits: Limits
    slot: int = 0
    mode: str | None = None
    extra_read_only: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    uid_base: int = 61000

    def __post_init__(self) -> None:
        self.mode = detect_mode(self.mode)
        self.tmp = Path(tempfile.mkdtemp(prefix="autograde-"))
        os.chmod(self.tmp, 0o711)
        self.scratch = self.tmp / "submission"
        self.scratch.mkdir()
        self.root = self.tmp / "root"
        self.root.mkdir()
        self.uid = self.uid_base + self.slot
        if self.mode == "namespaces":
            os.chown(self.scratch, self.uid, self.uid)
        self.proc: subprocess.Popen | None = None

    @property
    def scratch_inside(self) -> str:
        return INSIDE_SUBMISSION if self.mode in ("namespaces", "userns") else str(self.scratch)

    def copy_files(self, folder: Path, max_bytes: int = 50 * 1024**2) -> None:
        """Copy the submission's other files (never notebooks) into the scratch folder."""
        total = 0
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and not path.is_symlink() and path.suffix != ".ipynb":
                total += path.stat().st_size
                if total > max_bytes:
                    break
                dest = self.scratch / path.relative_to(folder)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
                if self.mode == "namespaces":
                    os.chown(dest, self.uid, self.uid)
                    os.chown(dest.parent, self.uid, self.uid)

    def start(self, in_fd: int, out_fd: int, log_fd: int) -> subprocess.Popen:
        env = {
            "HOME": "/tmp/home",
            "USER": "student",
            "LOGNAME": "student",
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp/mpl",
            "PYTHONHASHSEED": "0",
            "COURSE_FAST": "1",
            "COURSE_OFFLINE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **self.env,
        }
        mpl_cache = Path(os.environ.get("MPLCONFIGDIR") or Path.home() / ".cache" / "matplotlib")
        fontlists = sorted(mpl_cache.glob("fontlist-*.json")) if mpl_cache.is_dir() else []
        if fontlists:  # matplotlib's font list: without it every sandbox spends a second or two rebuilding it
            (self.scratch / ".mpl").mkdir(exist_ok=True)
            shutil.copyfile(fontlists[-1], self.scratch / ".mpl" / fontlists[-1].name)
            env["MPLCONFIGDIR"] = f"{self.scratch_inside}/.mpl"
            if self.mode == "namespaces":
                for path in (self.scratch / ".mpl", self.scratch / ".mpl" / fontlists[-1].name):
                    os.chown(path, self.uid, self.uid)
        env.setdefault("XDG_CACHE_HOME", "/tmp/cache")
        python = os.path.join(sys.prefix, "bin", "python")
        if self.mode == "plain":
            env["HOME"] = str(self.scratch)
            env["XDG_CACHE_HOME"] = str(self.scratch / ".cache")
            argv = [python, "-I", str(HARNESS), str(in_fd), str(out_fd)]
            limits = self.limits

            def preexec() -> None:
                import resource

                for name, value in limits.rlimits().items():
                    try:
                        resource.setrlimit(getattr(resource, name), (value, value))
                    except (ValueError, OSError, AttributeError):
                        pass

            self.proc = subprocess.Popen(
                argv,
                cwd=self.scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(in_fd, out_fd),
                start_new_session=True,
                preexec_fn=preexec,
            )  # noqa: PLW1509 (rlimits before exec)
            return self.proc
        argv = [python, "-I", INSIDE_HARNESS, str(in_fd), str(out_fd)]
        userns = self.mode == "userns"
        ro = python_paths() + [p for p in self.extra_read_only if os.path.exists(p)]
        script = _init_script(str(self.root), str(self.scratch), self.uid, self.limits, ro, userns, env, argv)
        cmd = (
            ["unshare"]
            + (["--user", "--map-root-user"] if userns else [])
            + [
                "--net",
                "--mount",
                "--pid",
                "--ipc",
                "--uts",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                script,
            ]
        )
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=(in_fd, out_fd),
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        return self.proc

    def kill(self) -> None:
        """Kill the harness and, with it, every process of the sandbox."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        if self.mode == "plain":
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        self.kill()
        if self.mode == "namespaces":
            # processes of the sandbox uid outside the namespace cannot exist (pid namespace); stray files go with tmp
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)
