"""Simulators of GitHub and Anthropic that speak the real wire protocols on 127.0.0.1."""
