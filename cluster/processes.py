"""Child processes owned by the local stack: started in their own session, stopped as a group.

Every child carries the stack's marker in its environment, so whatever it spawns in turn (Ray
workers, MLflow workers) can be found and stopped too, even when it left the process group.
Redis and Postgres overwrite that memory with their process titles, so the direct children are
also recorded by pid and executable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from core.errors import PlatformError

__all__ = [
    "ManagedProcess",
    "ChildRecord",
    "STACK_MARKER_ENV",
    "PRIVATE_UMASK",
    "service_env",
    "as_system_user",
    "stack_pids",
    "kill_stack_processes",
]

STACK_MARKER_ENV = "FINONE_STACK_ID"
READY_POLL_S = 0.2
# Files and directories the children create are their owner's only.
PRIVATE_UMASK = 0o077
# What a server that is not ours (Redis, Postgres) needs from the environment: not the
# platform's secret, passwords or cloud credentials.
_SERVICE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", STACK_MARKER_ENV)

log = logging.getLogger(__name__)


def as_system_user(user: str | None) -> dict[str, Any]:
    """``subprocess`` arguments that run a child as ``user`` with that user's own group and no
    others: ``user=`` alone would leave it root's groups."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def service_env(env: Mapping[str, str]) -> dict[str, str]:
    """The part of ``env`` a third-party server is started with."""
    return {name: env[name] for name in _SERVICE_ENV if name in env}


class ChildRecord(msgspec.Struct, frozen=True):
    """A direct child as recorded in the state file; the executable guards against pid reuse."""

    name: str
    pid: int
    executable: str


def _executable_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


class ManagedProcess:
    """One long-lived child process with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        stop_signal: signal.Signals = signal.SIGTERM,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.user = user
        self._popen: subprocess.Popen[bytes] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._stopping = False
        # Logs can hold connection URLs and tracebacks: the owner's only, like all the child
        # writes (umask), from the moment each file is created.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out:
            self._popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,
                **as_system_user(self.user),
            )
        log.info("started %s (pid %d)", self.name, self._popen.pid)

    def record(self) -> ChildRecord | None:
        """This process as the state file records it; None unless it is running."""
        if self._popen is None or self._popen.poll() is not None:
            return None
        executable = _executable_of(self._popen.pid)
        if executable is None:
            return None
        return ChildRecord(name=self.name, pid=self._popen.pid, executable=executable)

    def exit_code(self) -> int | None:
        """None while running (or never started); the exit status once it has ended."""
        return self._popen.poll() if self._popen else None

    @property
    def died_unexpectedly(self) -> bool:
        return self._popen is not None and not self._stopping and self._popen.poll() is not None

    def stop(self, timeout_s: float = 20.0) -> None:
        """Ask the process to stop, then kill its whole process group if it does not."""
        if self._popen is None:
            return
        self._stopping = True
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(self.stop_signal)
            try:
                self._popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, timeout_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(5)

    async def wait_until_ready(
        self, ready: Callable[[], Awaitable[bool]], timeout_s: float, *, hint: str = ""
    ) -> None:
        """Poll ``ready`` until it says yes; a ``PlatformError`` when the process exits first or
        the time runs out (``hint`` is appended to that message)."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.exit_code()
            if code is not None:
                raise PlatformError(
                    f"{self.name} exited during start-up with code {code}: "
                    f"{_last_line(self.tail())} (full log: {self.log_path})"
                )
            if await ready():
                return
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"{self.name} was not ready within {timeout_s:.0f} s; see {self.log_path}{hint}"
                )
            await asyncio.sleep(READY_POLL_S)

    def tail(self, lines: int = 20) -> str:
        """The end of the log, for error messages when the process fails to start."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def stack_pids(stack_id: str, children: Sequence[ChildRecord] = ()) -> list[int]:
    """Pids of the stack's processes still alive: marked in their environment, or recorded."""
    needle = f"{STACK_MARKER_ENV}={stack_id}".encode()
    me = os.getpid()
    found: set[int] = set()
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.add(pid)
    found.update(c.pid for c in children if _executable_of(c.pid) == c.executable)
    return sorted(found)


def kill_stack_processes(
    stack_id: str, children: Sequence[ChildRecord] = (), grace_s: float = 5.0
) -> list[int]:
    """Stop every remaining process of the stack: SIGTERM, then SIGKILL after a grace period."""
    pids = stack_pids(stack_id, children)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and stack_pids(stack_id, children):
        time.sleep(0.2)
    for pid in stack_pids(stack_id, children):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids
