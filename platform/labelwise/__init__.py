"""labelwise: choose which prompts to annotate (Weighted Task Diversity) and prove the choice on Ray."""

__version__ = "0.1.0"
