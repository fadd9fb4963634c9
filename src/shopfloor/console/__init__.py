"""The web console: server-rendered pages of the fleet, the queues and the sessions, a live
timeline over server-sent events, and stop / prompt / nudge. One more adapter over the
service layer (never SQL), served by `shopfloor serve` itself: no build step, no file from
anywhere but the server."""
