"""Phishing triage: score a reported or detected phishing email, quarantine
it when the evidence is strong, and leave a clear note on the alert."""

import json
import re
from datetime import datetime, timezone

from indicators import extract_urls, sender_domain, suspicious_url_score

QUARANTINE_SCORE = 70
MESSAGE_EVIDENCE = "#microsoft.graph.security.analyzedMessageEvidence"
URL_EVIDENCE = "#microsoft.graph.security.urlEvidence"


def _messages(alert):
    return [e for e in alert.get("evidence", []) if e.get("@odata.type") == MESSAGE_EVIDENCE]


def _urls(alert):
    urls = set()
    for e in alert.get("evidence", []):
        if e.get("@odata.type") == URL_EVIDENCE and e.get("url"):
            urls.add(e["url"])
        urls.update(e.get("urls") or [])
    urls.update(extract_urls(alert.get("description") or ""))
    return sorted(urls)


def run(alert: dict, ctx) -> dict:
    started = datetime.now(timezone.utc)
    messages = _messages(alert)
    urls = _urls(alert)
    ctx.log(f"triaging alert {alert.get('id')} with {len(messages)} message(s), {len(urls)} URL(s)")

    score = {"high": 40, "medium": 20}.get(alert.get("severity"), 0)
    findings = []
    for url in urls:
        s = suspicious_url_score(url)
        reputation = ctx.call("threat_intel", "url_reputation", {"url": url})
        if reputation.get("verdict") == "malicious":
            s += 50
        findings.append({"url": url, "score": s})
        score = max(score, s)

    for message in messages:
        domain = sender_domain(message)
        if domain and re.search(r"(pay|bank|invoice|verify)", domain):
            score += 10

    actions = []
    if score >= QUARANTINE_SCORE:
        for message in messages:
            ctx.call("mail", "quarantine_message", {
                "networkMessageId": message.get("networkMessageId"),
                "recipient": message.get("recipientEmailAddress"),
            })
            actions.append("quarantined " + str(message.get("networkMessageId")))

    summary = {
        "alertId": alert.get("id"),
        "score": min(score, 100),
        "verdict": "malicious" if score >= QUARANTINE_SCORE else "needs review",
        "findings": findings,
        "actions": actions,
        "seconds": (datetime.now(timezone.utc) - started).total_seconds(),
    }
    ctx.comment(alert.get("id"), "Phishing triage:\n" + json.dumps(summary, indent=2))
    return summary
