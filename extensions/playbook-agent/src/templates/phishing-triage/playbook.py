"""Phishing triage.

On a phishing alert: take the sender of the analysed message, check whether
that user exists in our directory (Microsoft Graph), and if so disable the
account, comment on the alert and notify the SOC. An external sender is only
reported.
"""
from urllib.parse import quote

from playbook_sdk import Context

GRAPH = "Microsoft Graph"
SOC_CHANNEL = "soc"
MESSAGE_EVIDENCE = "#microsoft.graph.security.analyzedMessageEvidence"
MAILBOX_EVIDENCE = "#microsoft.graph.security.mailboxEvidence"


def sender_addresses(alert: dict) -> list:
    """The senders of the alert's analysed messages (p1 then p2), lower-cased, without repeats."""
    found = []
    for entity in alert.get("evidence") or []:
        if entity.get("@odata.type") != MESSAGE_EVIDENCE:
            continue
        for field in ("p1Sender", "p2Sender"):
            address = ((entity.get(field) or {}).get("emailAddress") or "").strip().lower()
            if address and address not in found:
                found.append(address)
    if not found:
        # No analysed message: fall back on the mailbox the alert names.
        for entity in alert.get("evidence") or []:
            if entity.get("@odata.type") == MAILBOX_EVIDENCE and entity.get("primaryAddress"):
                found.append(entity["primaryAddress"].strip().lower())
    return found


def find_user(ctx: Context, address: str):
    """The directory user whose UPN or mail is ``address``, or None."""
    graph = ctx.integration(GRAPH)
    response = graph.get("/v1.0/users/" + quote(address, safe="@."),
                         params={"$select": "id,userPrincipalName,accountEnabled,displayName"})
    if response.ok:
        return response.json()
    if response.status != 404:
        raise RuntimeError("Microsoft Graph answered %d looking up %s" % (response.status, address))
    # Not a UPN: look it up by mail address.
    response = graph.get("/v1.0/users", params={
        "$filter": "mail eq '%s'" % address.replace("'", "''"),
        "$select": "id,userPrincipalName,accountEnabled,displayName",
    })
    if response.ok:
        users = response.json().get("value") or []
        return users[0] if users else None
    return None


def run(alert: dict, ctx: Context) -> dict:
    alert_id = alert.get("id", "?")
    senders = sender_addresses(alert)
    if not senders:
        ctx.log("Alert %s names no sender; nothing to do." % alert_id)
        return {"status": "skipped", "reason": "no sender in the alert's evidence"}

    disabled, external = [], []
    for address in senders:
        user = find_user(ctx, address)
        if user is None:
            ctx.log("%s is not a user of our directory." % address)
            external.append(address)
            continue
        upn = user.get("userPrincipalName") or address
        if user.get("accountEnabled") is False:
            ctx.log("%s is already disabled." % upn)
        else:
            ctx.disable_user(upn)
            ctx.log("Disabled %s." % upn)
        disabled.append(upn)

    lines = ["Phishing triage for alert %s (%s):" % (alert_id, alert.get("title", "untitled"))]
    for upn in disabled:
        lines.append("- %s exists in our directory: account disabled pending investigation." % upn)
    for address in external:
        lines.append("- %s is not in our directory (external sender): no account to disable." % address)
    summary = "\n".join(lines)
    ctx.comment_on_alert(summary)
    ctx.notify(SOC_CHANNEL, summary)
    if disabled:
        ctx.set_alert_status("inProgress")
    return {"status": "done", "disabled": disabled, "external": external}
