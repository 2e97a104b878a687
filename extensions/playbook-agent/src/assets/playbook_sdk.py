"""playbook_sdk: the ctx API of the Playbook Studio runtime, documented.

The runtime calls a playbook as ``run(alert, ctx)``:

- ``alert`` is a Microsoft Graph security alert (v2) as a dict: ``id``, ``title``,
  ``severity`` ("informational", "low", "medium", "high"), ``status``, ``incidentId``,
  ``serviceSource``, ``mitreTechniques``, and ``evidence``, a list of entities, each
  with an ``@odata.type`` such as ``#microsoft.graph.security.userEvidence``,
  ``...mailboxEvidence``, ``...analyzedMessageEvidence``, ``...urlEvidence``,
  ``...ipEvidence``.
- ``ctx`` is a ``Context`` (below): the only way to reach other systems.

This file is a stub, kept in the playbook folder so that code can be read and
checked. Playbooks import it only for type hints::

    from playbook_sdk import Context

    def run(alert: dict, ctx: Context) -> dict:
        ...

Rules of the runtime: the standard library only (no pip packages); at most
5,000 lines in playbook.py; a run ends after 10 minutes; ``run`` returns a
JSON-serialisable dict that says what it did (it is shown in the incident's
activity). Credentials never appear in code: ``ctx.integration(name)`` uses the
tenant's integration profile of that name, which holds the base URL and the
authentication (OAuth2 client credentials, API key, AWS auth, user and password,
bearer/JWT or Hawk). List every profile the playbook uses in manifest.json's
"integrations".

``print()`` output goes to the run's log, like ``ctx.log``. A ctx action that
fails raises ``ActionError``; an exception that escapes ``run`` fails the run and
its traceback is shown with the run.

``RecordingContext`` at the end is a stand-in for trying a playbook locally.
"""
from __future__ import annotations

import json as _json
from typing import Any, Dict, List, Mapping, Optional, Tuple


class IntegrationError(Exception):
    """An integration could not be called: unknown profile, network failure, timeout."""


class ActionError(Exception):
    """A ctx action failed or was refused: a bad alert status, an empty comment, or
    Microsoft Graph answering an error to block_user/disable_user."""


class Response:
    """The answer of an integration call."""

    def __init__(self, status: int, body: Any = None, headers: Optional[Dict[str, str]] = None,
                 truncated: bool = False) -> None:
        self.status = status
        self.headers: Dict[str, str] = dict(headers or {})
        self._body = body
        #: True when the answer passed the gateway's size cap and was cut.
        self.truncated = truncated

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body as text."""
        if isinstance(self._body, str):
            return self._body
        return "" if self._body is None else _json.dumps(self._body)

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not JSON)."""
        if isinstance(self._body, (dict, list)):
            return self._body
        return _json.loads(self.text)


class Integration:
    """A client for one integration profile: its base URL and its authentication.

    Paths are relative to the profile's base URL; the runtime adds the
    credentials. An HTTP error status is returned, not raised: check
    ``response.ok`` or ``response.status``.
    """

    name: str
    base_url: str

    def request(self, method: str, path: str, json: Any = None,
                params: Optional[Mapping[str, Any]] = None,
                headers: Optional[Mapping[str, str]] = None,
                timeout: float = 30.0) -> Response:
        """Sends ``method`` (GET, POST, PATCH, PUT, DELETE) to base URL + ``path``.

        ``json`` is sent as a JSON body, ``params`` as the query string.
        Raises IntegrationError when the service cannot be reached in
        ``timeout`` seconds.
        """
        raise NotImplementedError("provided by the Playbook Studio runtime")

    def get(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Response:
        """Same as request("GET", path, params=params)."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Response:
        """Same as request("POST", path, json=json)."""
        return self.request("POST", path, json=json)


class Context:
    """What a playbook may do. The runtime passes one to run(alert, ctx)."""

    def integration(self, name: str) -> Integration:
        """The client of the tenant's integration profile called ``name``.

        Raises IntegrationError when no profile has that name.
        """
        raise NotImplementedError("provided by the Playbook Studio runtime")

    def log(self, message: str) -> None:
        """Writes a line to the run's log (shown with the run's result)."""
        raise NotImplementedError("provided by the Playbook Studio runtime")

    def notify(self, channel: str, message: str) -> None:
        """Sends ``message`` to a notification channel of the tenant, e.g. "soc"."""
        raise NotImplementedError("provided by the Playbook Studio runtime")

    def comment_on_alert(self, text: str) -> None:
        """Adds a comment to the alert (it shows on its incident too)."""
        raise NotImplementedError("provided by the Playbook Studio runtime")

    def assign_alert(self, owner: str) -> None:
        """Assigns the alert to ``owner`` (a user principal name or display name)."""
        raise NotImplementedError("provided by the Playbook Studio runtime")

    def set_alert_status(self, status: str) -> None:
        """Sets the alert's status: "new", "inProgress" or "resolved"."""
        raise NotImplementedError("provided by the Playbook Studio runtime")

    def block_user(self, upn: str) -> None:
        """Blocks a Microsoft Entra ID user's sign-ins and revokes their sessions.

        Acts through the "Microsoft Graph" integration profile.
        """
        raise NotImplementedError("provided by the Playbook Studio runtime")

    def disable_user(self, upn: str) -> None:
        """Disables a Microsoft Entra ID account (accountEnabled = false).

        Acts through the "Microsoft Graph" integration profile.
        """
        raise NotImplementedError("provided by the Playbook Studio runtime")


class RecordingContext(Context):
    """A stand-in for trying a playbook locally, without the runtime.

    Every action is appended to ``calls`` as a tuple. Integration requests are
    answered from ``responses``, keyed "<profile> <METHOD> <path>", or
    "<profile> <METHOD> *" for any path; a value is a body (status 200) or a
    (status, body) pair. Anything else answers 404.

        ctx = RecordingContext({"Microsoft Graph GET *": {"id": "42"}})
        print(run(alert, ctx), ctx.calls)
    """

    def __init__(self, responses: Optional[Mapping[str, Any]] = None) -> None:
        self.responses: Dict[str, Any] = dict(responses or {})
        self.calls: List[Tuple[Any, ...]] = []

    def integration(self, name: str) -> Integration:
        ctx = self

        class _Recorded(Integration):
            def request(self, method: str, path: str, json: Any = None,
                        params: Optional[Mapping[str, Any]] = None,
                        headers: Optional[Mapping[str, str]] = None,
                        timeout: float = 30.0) -> Response:
                ctx.calls.append(("request", name, method.upper(), path, json, dict(params or {})))
                for key in ("%s %s %s" % (name, method.upper(), path), "%s %s *" % (name, method.upper())):
                    if key in ctx.responses:
                        answer = ctx.responses[key]
                        if isinstance(answer, tuple):
                            return Response(answer[0], answer[1])
                        return Response(200, answer)
                return Response(404, {"error": {"code": "NotFound", "message": "no recorded response"}})

        client = _Recorded()
        client.name = name
        client.base_url = "https://%s.invalid" % name.lower().replace(" ", "-")
        return client

    def log(self, message: str) -> None:
        self.calls.append(("log", message))

    def notify(self, channel: str, message: str) -> None:
        self.calls.append(("notify", channel, message))

    def comment_on_alert(self, text: str) -> None:
        self.calls.append(("comment_on_alert", text))

    def assign_alert(self, owner: str) -> None:
        self.calls.append(("assign_alert", owner))

    def set_alert_status(self, status: str) -> None:
        self.calls.append(("set_alert_status", status))

    def block_user(self, upn: str) -> None:
        self.calls.append(("block_user", upn))

    def disable_user(self, upn: str) -> None:
        self.calls.append(("disable_user", upn))
