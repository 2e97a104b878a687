"""Indicator helpers for the phishing triage playbook (standard library only)."""

import ipaddress
import re
from urllib.parse import urlsplit

URL_RE = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
LURE_WORDS = ("verify", "login", "password", "payroll", "invoice", "account")


def extract_urls(text):
    return sorted(set(URL_RE.findall(text)))


def sender_domain(message):
    sender = (message.get("p1Sender") or {}).get("emailAddress") or ""
    return sender.rpartition("@")[2].lower()


def suspicious_url_score(url):
    parts = urlsplit(url)
    host = parts.hostname or ""
    score = 0
    try:
        ipaddress.ip_address(host)
        score += 30
    except ValueError:
        pass
    if host.count("-") >= 1 or host.count(".") >= 3:
        score += 10
    if any(word in url.lower() for word in LURE_WORDS):
        score += 20
    if parts.scheme == "http":
        score += 10
    return score
