"""One router per resource: predictions, health and model, admin, the web page."""
