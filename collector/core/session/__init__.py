"""The pure core of a call: the session model, its events and commands, and decide()."""
