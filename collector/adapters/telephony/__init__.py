"""The Telnyx edge: webhook verification and parsing, and the command client."""
