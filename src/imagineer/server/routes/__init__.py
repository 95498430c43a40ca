"""One router per resource: jobs, events, media, verify, images (OpenAI) and health."""
