"""The live event stream of a run: `GET /runs/{id}/events` over Server-Sent Events."""
