"""GitHub access: the App/installation client factory (`client`) and payload models."""
