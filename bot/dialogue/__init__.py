"""The dialogue layer: reading customer messages (rules engine), the engines, and their wording."""
