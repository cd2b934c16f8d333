"""Model inference: the champion forecasters served by their own Serve deployment."""
