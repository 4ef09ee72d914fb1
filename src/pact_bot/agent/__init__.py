"""The coding agent: its definition, tools, sandbox, loop, budgets, cost and transcript.

Importing the package imports nothing else: `agent.loop` brings in the anthropic SDK (about
2 s), which ingress and the CLI must not pay for. Import the module you need.
"""
