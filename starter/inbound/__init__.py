"""starter/inbound: the SMTP listener that takes bounces, complaints and replies."""
