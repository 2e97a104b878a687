// @ts-check
// Sample alerts for the Incidents page's "Send sample alert" button: three
// of the alert fixtures (../shared/fixtures/alerts: phishing-high.json, aws-iam-high.json, info-low.json),
// copied here because the portal cannot read that folder. sampleAlert()
// gives each send a fresh id, incident id and timestamps, so every click
// creates a new alert in a new incident (a re-post of the same id would
// only update the alert, and never trigger rules again). No DOM here.

/** @type {ReadonlyArray<Record<string, any>>} */
export const SAMPLE_ALERTS = Object.freeze([
  {
    "id": "da637578995287051192_756343937",
    "providerAlertId": "da637578995287051192_756343937",
    "incidentId": "28282",
    "status": "new",
    "severity": "high",
    "classification": null,
    "determination": null,
    "serviceSource": "microsoftDefenderForOffice365",
    "detectionSource": "microsoftDefenderForOffice365",
    "detectorId": "a1b2c3d4-0001-4000-8000-000000000001",
    "tenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
    "title": "Email messages containing malicious URL removed after delivery",
    "description": "Emails with a malicious URL were delivered and later removed. The sender may be compromised.",
    "recommendedActions": "Investigate the sender and reset credentials if compromised.",
    "category": "InitialAccess",
    "assignedTo": null,
    "alertWebUrl": "https://security.example.test/alerts/da637578995287051192_756343937",
    "incidentWebUrl": "https://security.example.test/incidents/28282",
    "actorDisplayName": null,
    "threatDisplayName": null,
    "threatFamilyName": null,
    "mitreTechniques": [
      "T1566.002"
    ],
    "createdDateTime": "2026-11-20T09:14:03.1234567Z",
    "lastUpdateDateTime": "2026-11-20T09:20:11.7654321Z",
    "resolvedDateTime": null,
    "firstActivityDateTime": "2026-11-20T09:02:44Z",
    "lastActivityDateTime": "2026-11-20T09:05:10Z",
    "comments": [],
    "systemTags": [],
    "evidence": [
      {
        "@odata.type": "#microsoft.graph.security.mailboxEvidence",
        "createdDateTime": "2026-11-20T09:14:03Z",
        "verdict": "suspicious",
        "remediationStatus": "none",
        "roles": [],
        "tags": [],
        "primaryAddress": "megan.bowen@contoso.example",
        "displayName": "Megan Bowen",
        "userAccount": {
          "accountName": "meganb",
          "domainName": "contoso.example",
          "userPrincipalName": "megan.bowen@contoso.example",
          "azureAdUserId": "7d3c1d2a-5b44-4b0e-9a8a-3e0d6f1b2c11",
          "displayName": "Megan Bowen"
        }
      },
      {
        "@odata.type": "#microsoft.graph.security.analyzedMessageEvidence",
        "createdDateTime": "2026-11-20T09:14:03Z",
        "verdict": "malicious",
        "remediationStatus": "remediated",
        "roles": [],
        "tags": [],
        "senderIp": "203.0.113.45",
        "subject": "Action required: verify your payroll details",
        "p1Sender": {
          "emailAddress": "payroll@fabrikam-payments.example",
          "displayName": "Payroll"
        },
        "p2Sender": {
          "emailAddress": "payroll@fabrikam-payments.example",
          "displayName": "Payroll"
        },
        "recipientEmailAddress": "megan.bowen@contoso.example",
        "urls": [
          "https://fabrikam-payments.example/verify?id=7731"
        ],
        "networkMessageId": "4b1a9c2e-77f0-4e6e-9d1b-0f3f0a1c2d3e",
        "internetMessageId": "<PH0PR07MB1234@fabrikam-payments.example>",
        "deliveryAction": "delivered",
        "deliveryLocation": "inbox"
      },
      {
        "@odata.type": "#microsoft.graph.security.urlEvidence",
        "createdDateTime": "2026-11-20T09:14:03Z",
        "verdict": "malicious",
        "remediationStatus": "none",
        "roles": [],
        "tags": [],
        "url": "https://fabrikam-payments.example/verify?id=7731"
      }
    ]
  },
  {
    "id": "ar-aws-000000000000000000000042",
    "providerAlertId": "guardduty-7ebd5e2c9a",
    "incidentId": "31007",
    "status": "new",
    "severity": "high",
    "classification": null,
    "determination": null,
    "serviceSource": "microsoftDefenderForCloud",
    "detectionSource": "cloudAppSecurity",
    "detectorId": "a1b2c3d4-0002-4000-8000-000000000002",
    "tenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
    "title": "Suspicious creation of access keys by an IAM user",
    "description": "An IAM user created access keys from an IP address never seen for this account.",
    "recommendedActions": "Disable the IAM user's access keys and review CloudTrail activity.",
    "category": "Persistence",
    "assignedTo": null,
    "alertWebUrl": "https://security.example.test/alerts/ar-aws-000000000000000000000042",
    "incidentWebUrl": "https://security.example.test/incidents/31007",
    "mitreTechniques": [
      "T1098.001"
    ],
    "createdDateTime": "2026-11-21T22:41:19Z",
    "lastUpdateDateTime": "2026-11-21T22:41:19Z",
    "resolvedDateTime": null,
    "firstActivityDateTime": "2026-11-21T22:30:00Z",
    "lastActivityDateTime": "2026-11-21T22:39:58Z",
    "comments": [],
    "systemTags": [
      "aws"
    ],
    "evidence": [
      {
        "@odata.type": "#microsoft.graph.security.userEvidence",
        "createdDateTime": "2026-11-21T22:41:19Z",
        "verdict": "suspicious",
        "remediationStatus": "none",
        "roles": [
          "compromised"
        ],
        "tags": [],
        "userAccount": {
          "accountName": "ci-deployer",
          "domainName": null,
          "userPrincipalName": null,
          "azureAdUserId": null,
          "displayName": "arn:aws:iam::123456789012:user/ci-deployer",
          "resourceAccessEvents": []
        }
      },
      {
        "@odata.type": "#microsoft.graph.security.ipEvidence",
        "createdDateTime": "2026-11-21T22:41:19Z",
        "verdict": "suspicious",
        "remediationStatus": "none",
        "roles": [
          "attacker"
        ],
        "tags": [],
        "ipAddress": "198.51.100.77",
        "countryLetterCode": "ZZ"
      }
    ]
  },
  {
    "id": "da638009988776655443_998877665",
    "providerAlertId": "da638009988776655443_998877665",
    "incidentId": "29555",
    "status": "new",
    "severity": "informational",
    "classification": null,
    "determination": null,
    "serviceSource": "microsoftSentinel",
    "detectionSource": "scheduledAlerts",
    "detectorId": "a1b2c3d4-0004-4000-8000-000000000004",
    "tenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
    "title": "Multiple failed sign-ins followed by success",
    "description": "Five failed sign-ins then a successful sign-in for the same account within ten minutes.",
    "recommendedActions": "",
    "category": "CredentialAccess",
    "assignedTo": null,
    "alertWebUrl": "https://security.example.test/alerts/da638009988776655443_998877665",
    "incidentWebUrl": "https://security.example.test/incidents/29555",
    "mitreTechniques": [
      "T1110"
    ],
    "createdDateTime": "2026-11-23T07:00:00Z",
    "lastUpdateDateTime": "2026-11-23T07:00:00Z",
    "resolvedDateTime": null,
    "firstActivityDateTime": "2026-11-23T06:49:12Z",
    "lastActivityDateTime": "2026-11-23T06:58:40Z",
    "comments": [],
    "systemTags": [],
    "evidence": [
      {
        "@odata.type": "#microsoft.graph.security.userEvidence",
        "createdDateTime": "2026-11-23T07:00:00Z",
        "verdict": "unknown",
        "remediationStatus": "none",
        "roles": [],
        "tags": [],
        "userAccount": {
          "accountName": "johnd",
          "domainName": "contoso.example",
          "userPrincipalName": "john.doe@contoso.example",
          "azureAdUserId": "0c2d9e31-7a3f-4b8e-b6d4-9f1e2a3b4c5d",
          "displayName": "John Doe"
        }
      }
    ]
  }
]);

/**
 * Random hex digits: crypto's where there is one (browsers, node), else
 * Math.random (ids of samples need not be secret, only fresh).
 * @param {number} n
 */
function randomHex(n) {
  const bytes = new Uint8Array(Math.ceil(n / 2));
  if (globalThis.crypto && typeof globalThis.crypto.getRandomValues === 'function') globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('').slice(0, n);
}

/**
 * A fresh copy of sample i (modulo their count): new id (and
 * providerAlertId), new numeric incidentId, status new, created and last
 * updated now, its activity a few minutes before, and the web URLs that
 * name them.
 * @param {number} i
 * @param {{ now?: Date, hex?: (n: number) => string }} [opts]
 * @returns {Record<string, any>}
 */
export function sampleAlert(i, opts = {}) {
  const now = opts.now || new Date();
  const hex = opts.hex || randomHex;
  const n = SAMPLE_ALERTS.length;
  const a = JSON.parse(JSON.stringify(SAMPLE_ALERTS[((i % n) + n) % n]));
  const at = (minutesBefore) => new Date(now.getTime() - minutesBefore * 60_000).toISOString();
  const id = `sample-${now.getTime().toString(36)}-${hex(8)}`;
  const incidentId = String(parseInt(hex(7), 16) % 90_000_000 + 10_000_000);
  a.id = id;
  a.providerAlertId = id;
  a.incidentId = incidentId;
  a.status = 'new';
  a.assignedTo = null;
  a.classification = null;
  a.determination = null;
  a.resolvedDateTime = null;
  a.comments = [];
  a.createdDateTime = at(0);
  a.lastUpdateDateTime = at(0);
  a.firstActivityDateTime = at(12);
  a.lastActivityDateTime = at(3);
  if (typeof a.alertWebUrl === 'string') a.alertWebUrl = a.alertWebUrl.replace(/[^/]+$/, id);
  if (typeof a.incidentWebUrl === 'string') a.incidentWebUrl = a.incidentWebUrl.replace(/[^/]+$/, incidentId);
  for (const e of Array.isArray(a.evidence) ? a.evidence : []) {
    if (e && typeof e === 'object' && 'createdDateTime' in e) e.createdDateTime = at(0);
  }
  return a;
}
