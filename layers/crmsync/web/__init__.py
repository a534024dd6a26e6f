"""The settings pages (F12): static HTML/JS/CSS over the /v1 API."""
