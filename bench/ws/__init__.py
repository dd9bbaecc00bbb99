"""The WebSocket suite: echo round trips and idle memory per connection."""
