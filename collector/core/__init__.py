"""The pure core: forms (JSON Schema in, validators and gather parameters out), the
session state machine and the SDK's parameter types. It imports no web framework, no
database driver, no HTTP client and reads no clock (tests/test_layers.py)."""
