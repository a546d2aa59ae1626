"""A secret key that passes the production checks (never used outside tests)."""

GOOD_KEY = "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP"
