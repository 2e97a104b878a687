"""pbs_runtime: runs one playbook inside the runner's sandbox.

Started as ``python3 -I -S -B pbs_runtime.py`` with the playbook's folder
bound read-only at /playbook and the gateway's socket at /run/pbs/ctx.sock.
It asks the gateway for the alert over that socket (never a command line),
imports playbook.py, calls run(alert, ctx), and sends the result back. The
``ctx`` given to run is the API of the extension's playbook_sdk.py; keep the
two consistent. Standard library only.

The protocol is one JSON object per line each way: a request
``{"id": n, "op": ..., ...}`` gets ``{"id": n, "ok": {...}}`` or
``{"id": n, "error": {"type": ..., "message": ...}}``. The gateway refuses a
line over its operation's limit (and closes the connection past the longest):
hello's answer gives the limits, and the runtime checks them before sending,
so that a playbook gets an exception instead.
"""
# Imports are few and cheap: they are paid before every run() (traceback
# only when a run fails; _thread's lock instead of threading).
import _thread
import json as _json
import os
import socket
import sys

SOCKET = "/run/pbs/ctx.sock"
PLAYBOOK_DIR = "/playbook"


class IntegrationError(Exception):
    """An integration could not be called: unknown profile, network failure, timeout."""


class ActionError(Exception):
    """A ctx action (comment, assignment, status, notification, user change) failed."""


def _cut(s, n):
    """s cut to at most n bytes of UTF-8, whole characters."""
    if len(s) <= n // 4:
        return s
    b = s.encode("utf-8", "surrogatepass")
    if len(b) <= n:
        return s
    return b[:n].decode("utf-8", "ignore")


def _error_type(op):
    return IntegrationError if op == "integration" else ActionError


class _Channel:
    """The one connection to the gateway; calls are serialised so threads may share it."""

    def __init__(self, path):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._file = self._sock.makefile("rwb")
        self._lock = _thread.allocate_lock()
        self._next = 0
        # The gateway's limits, from hello's answer (hello itself is short).
        self.limits = {}

    def call(self, op, _body=0, **fields):
        # _body: the length of a request's JSON body as it is in the line.
        fields["op"] = op
        with self._lock:
            self._next += 1
            fields["id"] = self._next
            data = _json.dumps(fields, separators=(",", ":")).encode("utf-8") + b"\n"
            self._check(op, len(data), _body)
            self._file.write(data)
            self._file.flush()
            line = self._file.readline()
        if not line:
            # The gateway is gone (restart, cancel): nothing may outlive it.
            _end_everything()
        answer = _json.loads(line)
        err = answer.get("error")
        if err:
            kind = IntegrationError if err.get("type") == "IntegrationError" else ActionError
            raise kind(err.get("message") or "the gateway refused the call")
        return answer.get("ok") or {}

    def _check(self, op, n, body):
        lim = self.limits
        if op == "request":
            if lim.get("requestRest") and n - body > lim["requestRest"]:
                raise IntegrationError("the request's path, query and headers are %d bytes; a playbook's "
                                       "integration call sends at most %d" % (n - body, lim["requestRest"]))
            return
        limit = lim.get("ops", {}).get(op, lim.get("other"))
        if limit and n > limit:
            raise _error_type(op)("the %s message is %d bytes; the gateway takes at most %d" % (op, n, limit))

    def log(self, message):
        # The gateway keeps logLine bytes and marks a longer line cut ("…"):
        # a few bytes more than that keep the mark, not the whole message.
        self.call("log", message=_cut(message, self.limits.get("logLine", 4000) + 4))

    def fail(self, error, traceback):
        # The gateway keeps the error's first bytes, then the traceback's.
        n = self.limits.get("error", 16384)
        self.call("fail", error=_cut(error, n), traceback=_cut(traceback, n))


def _end_everything():
    # Kills every process of this uid the sandbox holds, this one included.
    try:
        os.kill(-1, 9)
    finally:
        os._exit(70)


class Response:
    """The answer of an integration call."""

    def __init__(self, status, body=None, headers=None, truncated=False):
        self.status = status
        self.headers = dict(headers or {})
        self._body = body
        self.truncated = truncated

    @property
    def ok(self):
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self):
        """The body as text."""
        if isinstance(self._body, str):
            return self._body
        return "" if self._body is None else _json.dumps(self._body)

    def json(self):
        """The body parsed as JSON (raises ValueError when it is not JSON)."""
        if isinstance(self._body, (dict, list)):
            return self._body
        return _json.loads(self.text)


class Integration:
    """A client for one integration profile; the gateway adds the credentials."""

    def __init__(self, channel, name, base_url):
        self._channel = channel
        self.name = name
        self.base_url = base_url

    def request(self, method, path, json=None, params=None, headers=None, timeout=30.0):
        """Sends ``method`` to base URL + ``path``; an HTTP error status is returned, not raised."""
        fields = {"integration": self.name, "method": str(method).upper(), "path": str(path),
                  "timeout": float(timeout)}
        if params:
            fields["params"] = {str(k): ([str(x) for x in v] if isinstance(v, (list, tuple)) else str(v))
                                for k, v in dict(params).items()}
        if headers:
            fields["headers"] = {str(k): str(v) for k, v in dict(headers).items()}
        body = 0
        if json is not None:
            body = len(_json.dumps(json, separators=(",", ":")))  # ASCII: characters are bytes
            most = self._channel.limits.get("requestBody")
            if most and body > most:
                raise IntegrationError("the request body is %d bytes; a playbook's integration call sends at most %d"
                                       % (body, most))
            fields["json"] = json
        got = self._channel.call("request", _body=body, **fields)
        return Response(got.get("status", 0), got.get("body"), got.get("headers"), bool(got.get("truncated")))

    def get(self, path, params=None):
        """Same as request("GET", path, params=params)."""
        return self.request("GET", path, params=params)

    def post(self, path, json=None):
        """Same as request("POST", path, json=json)."""
        return self.request("POST", path, json=json)


class Context:
    """What a playbook may do: the runtime passes one to run(alert, ctx)."""

    def __init__(self, channel):
        self._channel = channel

    def integration(self, name):
        """The client of the tenant's integration profile ``name`` (IntegrationError when there is none)."""
        got = self._channel.call("integration", name=str(name))
        return Integration(self._channel, got.get("name", name), got.get("baseUrl", ""))

    def log(self, message):
        """Writes a line to the run's log."""
        self._channel.log(str(message))

    def notify(self, channel, message):
        """Sends ``message`` to a notification channel of the tenant, e.g. "soc"."""
        self._channel.call("action", type="notify", channel=str(channel), message=str(message))

    def comment_on_alert(self, text):
        """Adds a comment to the alert."""
        self._channel.call("action", type="comment_on_alert", text=str(text))

    def assign_alert(self, owner):
        """Assigns the alert to ``owner``."""
        self._channel.call("action", type="assign_alert", owner=str(owner))

    def set_alert_status(self, status):
        """Sets the alert's status: "new", "inProgress" or "resolved"."""
        self._channel.call("action", type="set_alert_status", status=str(status))

    def block_user(self, upn):
        """Blocks a Microsoft Entra ID user's sign-ins and revokes their sessions (through "Microsoft Graph")."""
        self._channel.call("action", type="block_user", upn=str(upn))

    def disable_user(self, upn):
        """Disables a Microsoft Entra ID account (through "Microsoft Graph")."""
        self._channel.call("action", type="disable_user", upn=str(upn))


def _sdk_module():
    # Playbooks import playbook_sdk for type hints and IntegrationError;
    # they get these classes, not the stub in their folder, so that
    # "except IntegrationError" catches what the runtime raises.
    m = type(sys)("playbook_sdk")
    m.__doc__ = "The Playbook Studio runtime's ctx API (see the extension's playbook_sdk.py)."
    for obj in (IntegrationError, ActionError, Response, Integration, Context):
        setattr(m, obj.__name__, obj)
    return m


def _redirect_prints(channel):
    # print() in a playbook lands in the run's log, line by line.
    class _Log:
        def __init__(self):
            self._buf = ""

        def write(self, s):
            self._buf += s
            while "\n" in self._buf:
                line, self._buf = self._buf.split("\n", 1)
                channel.log(line)
            return len(s)

        def flush(self):
            pass

    sys.stdout = _Log()


def main():
    channel = _Channel(SOCKET)
    hello = channel.call("hello")
    channel.limits = hello.get("limits") or {}
    alert = hello.get("alert")
    sys.modules["playbook_sdk"] = _sdk_module()
    sys.path.insert(0, PLAYBOOK_DIR)
    sys.dont_write_bytecode = True
    _redirect_prints(channel)
    try:
        import importlib
        playbook = importlib.import_module("playbook")
        run = getattr(playbook, "run", None)
        if not callable(run):
            channel.fail("playbook.py defines no run(alert, ctx) function", "")
            return
        channel.call("enter")
        result = run(alert, Context(channel))
    except BaseException as e:  # SystemExit and KeyboardInterrupt too: the run failed
        import traceback
        channel.fail("%s: %s" % (type(e).__name__, e), traceback.format_exc())
        return
    try:
        text = _json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as e:
        channel.fail("run() must return JSON (a dict of strings, numbers, lists, booleans and None); "
                     "it returned a %s: %s" % (type(result).__name__, e), "")
        return
    result = _json.loads(text)
    # The gateway keeps a result's first bytes past its limit: only those
    # are sent (ASCII JSON: characters are bytes).
    compact = _json.dumps(result, separators=(",", ":"))
    most = channel.limits.get("result")
    if most and len(compact) > most:
        channel.call("result", preview=compact[:most], resultBytes=len(compact))
        return
    channel.call("result", result=result)


if __name__ == "__main__":
    main()
    sys.stdout = sys.__stdout__
    os._exit(0)
