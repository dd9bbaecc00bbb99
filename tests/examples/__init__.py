"""End-to-end tests of the examples, as a user runs them."""
