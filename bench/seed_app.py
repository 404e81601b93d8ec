"""The seed's pattern, for comparison: Flask, the SDK's full `unwrap`, nothing persisted.

    gunicorn -w 1 -b 127.0.0.1:PORT bench.seed_app:app     (TELNYX_PUBLIC_KEY set)

The client is built once at import. Building one per request, as a literal reading of the
seed would, costs about 23 ms each here (an httpx client and its TLS context) and would
make the seed some 20x slower: the ratio against it stays conservative.
"""

from __future__ import annotations

import os

import telnyx
from flask import Flask, request

app = Flask(__name__)
client = telnyx.Telnyx(api_key="KEY_bench", public_key=os.environ["TELNYX_PUBLIC_KEY"])


@app.post("/webhooks/telnyx")
def webhook() -> tuple[str, int]:
    try:
        client.webhooks.unwrap(request.get_data().decode(), headers=dict(request.headers))
    except ValueError:
        return "bad signature", 401
    return "", 200


@app.get("/healthz")
def healthz() -> tuple[str, int]:
    return "ok", 200
