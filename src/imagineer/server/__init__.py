"""imagineer's HTTP API: REST jobs, SSE progress, OpenAI-compatible image routes and API keys.

Build the app with `imagineer.server.app.create_app(settings)`; nothing here runs at import.
"""
