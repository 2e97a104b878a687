"""Block a suspicious AWS IAM user.

When a high-severity alert includes an AWS IAM user entity: block the user
(attach AWS's deny-all managed policy), assign the alert to the responder and
add a remediation comment.
"""
from playbook_sdk import Context

AWS_IAM = "AWS IAM"
ASSIGN_TO = "John"  # who handles these alerts: change to your responder's name or UPN
DENY_ALL_POLICY = "arn:aws:iam::aws:policy/AWSDenyAll"
USER_EVIDENCE = "#microsoft.graph.security.userEvidence"
IAM_VERSION = "2010-05-08"


def iam_users(alert: dict) -> list:
    """The IAM user names of the alert's user entities (from an IAM user ARN, or an AWS alert's account name)."""
    names = []
    is_aws_alert = "aws" in [str(t).lower() for t in alert.get("systemTags") or []]
    for entity in alert.get("evidence") or []:
        if entity.get("@odata.type") != USER_EVIDENCE:
            continue
        account = entity.get("userAccount") or {}
        arn = account.get("displayName") or ""
        name = None
        if arn.startswith("arn:aws:iam::") and ":user/" in arn:
            name = arn.split(":user/", 1)[1].split("/")[-1]
        elif is_aws_alert and account.get("accountName"):
            name = account["accountName"]
        if name and name not in names:
            names.append(name)
    return names


def block(ctx: Context, user_name: str) -> bool:
    """Attaches the deny-all policy to the IAM user; True when AWS accepted it."""
    response = ctx.integration(AWS_IAM).request("POST", "/", params={
        "Action": "AttachUserPolicy",
        "Version": IAM_VERSION,
        "UserName": user_name,
        "PolicyArn": DENY_ALL_POLICY,
    }, headers={"Accept": "application/json"})
    if not response.ok:
        ctx.log("AWS IAM refused to block %s: HTTP %d %s" % (user_name, response.status, response.text[:200]))
    return response.ok


def run(alert: dict, ctx: Context) -> dict:
    severity = str(alert.get("severity", "")).lower()
    if severity != "high":
        ctx.log("Severity is %s, not high; nothing to do." % (severity or "unknown"))
        return {"status": "skipped", "reason": "not a high-severity alert"}
    users = iam_users(alert)
    if not users:
        ctx.log("No IAM user entity in alert %s; nothing to do." % alert.get("id", "?"))
        return {"status": "skipped", "reason": "no IAM user entity"}

    blocked = [u for u in users if block(ctx, u)]
    failed = [u for u in users if u not in blocked]
    ctx.assign_alert(ASSIGN_TO)

    lines = ["Automated response to a high-severity alert on AWS IAM user(s):"]
    for u in blocked:
        lines.append("- %s: blocked (the AWSDenyAll policy is attached)." % u)
    for u in failed:
        lines.append("- %s: could NOT be blocked automatically; block it by hand." % u)
    lines += [
        "Remediation:",
        "1. Deactivate and delete the user's access keys; rotate any secret they could read.",
        "2. Review CloudTrail for the user's activity since %s." % alert.get("firstActivityDateTime", "the first activity"),
        "3. Remove the AWSDenyAll policy only once the account is confirmed clean.",
        "Assigned to %s." % ASSIGN_TO,
    ]
    ctx.comment_on_alert("\n".join(lines))
    ctx.set_alert_status("inProgress")
    return {"status": "done", "blocked": blocked, "failed": failed, "assignedTo": ASSIGN_TO}
