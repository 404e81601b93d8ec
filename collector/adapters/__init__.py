"""Adapters to the outside world behind the ports (collector.ports): Telnyx (webhook
verification and parsing, the Call Control client) and the session store."""
