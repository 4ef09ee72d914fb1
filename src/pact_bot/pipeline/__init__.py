"""Job kinds (code, revise, reply, spec check) and the steps they share; see
docs/architecture.md. The worker's handler is `pipeline.handlers.build_handler`."""
