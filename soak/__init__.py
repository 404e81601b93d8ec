"""The soak and fault suite: `make soak` (`python -m soak`); see docs/reliability.md."""
