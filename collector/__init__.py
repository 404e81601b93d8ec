"""collector: an AI data-collection orchestrator for phone calls on Telnyx."""

__version__ = "0.1.0"
