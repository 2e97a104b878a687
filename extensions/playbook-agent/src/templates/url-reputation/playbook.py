"""URL reputation enrichment.

For each URL entity of the alert, ask the reputation service (VirusTotal)
what it knows, then add the results as one comment on the alert, which shows
on its incident.
"""
import base64

from playbook_sdk import Context

REPUTATION = "VirusTotal"
URL_EVIDENCE = "#microsoft.graph.security.urlEvidence"
MESSAGE_EVIDENCE = "#microsoft.graph.security.analyzedMessageEvidence"
MAX_URLS = 20  # keeps a run well inside the 10-minute limit and the service's quota


def alert_urls(alert: dict) -> list:
    """The URLs of the alert's URL entities and analysed messages, without repeats, in order."""
    urls = []
    for entity in alert.get("evidence") or []:
        kind = entity.get("@odata.type")
        if kind == URL_EVIDENCE:
            candidates = [entity.get("url")]
        elif kind == MESSAGE_EVIDENCE:
            candidates = entity.get("urls") or []
        else:
            continue
        for url in candidates:
            if isinstance(url, str) and url.strip() and url.strip() not in urls:
                urls.append(url.strip())
    return urls[:MAX_URLS]


def url_id(url: str) -> str:
    """VirusTotal's identifier of a URL: unpadded URL-safe base64 of the URL."""
    return base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")


def reputation(ctx: Context, url: str) -> dict:
    """What the service says about ``url``: a verdict and the engine counts."""
    response = ctx.integration(REPUTATION).get("/urls/" + url_id(url))
    if response.status == 404:
        return {"url": url, "verdict": "unknown", "detail": "not yet analysed by %s" % REPUTATION}
    if not response.ok:
        return {"url": url, "verdict": "error", "detail": "%s answered HTTP %d" % (REPUTATION, response.status)}
    attributes = (response.json().get("data") or {}).get("attributes") or {}
    stats = attributes.get("last_analysis_stats") or {}
    malicious = int(stats.get("malicious", 0))
    suspicious = int(stats.get("suspicious", 0))
    total = sum(int(v) for v in stats.values() if isinstance(v, (int, float)))
    if malicious > 0:
        verdict = "malicious"
    elif suspicious > 0:
        verdict = "suspicious"
    else:
        verdict = "clean"
    return {
        "url": url,
        "verdict": verdict,
        "detail": "%d malicious, %d suspicious of %d engines" % (malicious, suspicious, total),
        "reputation": attributes.get("reputation"),
    }


def run(alert: dict, ctx: Context) -> dict:
    urls = alert_urls(alert)
    if not urls:
        ctx.log("Alert %s has no URL entity; nothing to enrich." % alert.get("id", "?"))
        return {"status": "skipped", "reason": "no URL entities"}

    results = [reputation(ctx, url) for url in urls]
    lines = ["URL reputation (%s) for %d URL(s):" % (REPUTATION, len(results))]
    for r in results:
        lines.append("- %s: %s (%s)" % (r["url"], r["verdict"].upper(), r["detail"]))
    ctx.comment_on_alert("\n".join(lines))
    flagged = [r["url"] for r in results if r["verdict"] in ("malicious", "suspicious")]
    ctx.log("Enriched %d URL(s); %d flagged." % (len(results), len(flagged)))
    return {"status": "done", "urls": len(results), "flagged": flagged, "results": results}
