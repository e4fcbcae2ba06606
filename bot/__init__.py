"""Deflation Watch: watches how fast the price of LLM inference falls, and says so in chat."""

__version__ = "0.1.0"
