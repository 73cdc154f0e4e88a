#!/usr/bin/env python3
"""Verify webhook signatures produced by hookline with the `standardwebhooks` reference
library (an implementation independent of hookline's).

Input: a JSON-lines file, one case per line:
  {"secret": "whsec_...", "headers": {"webhook-id": ..., "webhook-timestamp": ...,
   "webhook-signature": ...}, "body_b64": "<base64 of the exact request body>",
   "expect": "valid" | "invalid"   (optional, default "valid")}

Exit status 0 when every case verifies as expected, 1 otherwise, 2 on bad input.
"""

import base64
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main(path: str) -> int:
    verified = rejected = failures = 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            case = json.loads(line)
            expect = case.get("expect", "valid")
            body = base64.b64decode(case["body_b64"])
            try:
                Webhook(case["secret"]).verify(body, case["headers"])
                outcome = "valid"
            except WebhookVerificationError as e:
                outcome = "invalid"
                reason = str(e)
            if outcome != expect:
                failures += 1
                detail = "" if outcome == "valid" else f": {reason}"
                print(f"line {number}: expected {expect}, got {outcome}{detail}")
            elif outcome == "valid":
                verified += 1
            else:
                rejected += 1
    print(f"{verified} verified, {rejected} rejected as expected, {failures} wrong")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
