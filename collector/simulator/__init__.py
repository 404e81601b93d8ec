"""The built-in Telnyx simulator: a fake Call Control API and a scripted caller.

* `fake_telnyx.FakeTelnyx`: the fake API (ASGI app), the simulated calls, what was sent;
  `call_control_api`: its HTTP side (routes, body checks, Telnyx's errors, dedupe);
  `faults`: injected 429/5xx/late responses (`fake.faults.arm(...)`).
* `network`: what Telnyx does after each command (webhooks, paced, per call in order).
* `voice_ai`: what the voice AI and the caller say in AI gathers and assistants;
  `effect`: what a command's effect is (paced coroutine, media kind, body readers).
* `webhooks`: signed delivery with Telnyx's redelivery; `signing`: Ed25519 as Telnyx signs.
* `script.CallScript`: the `--answers FILE` format; `caller.ScriptedCaller`: the person.
* `calls`: the records (`SimCall`, `RecordedCommand`, `RejectedCommand`, `Delivery`).
"""
