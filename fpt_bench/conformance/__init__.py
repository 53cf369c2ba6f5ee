"""``fpt-bench check-plugin``: the contracts a plugin component must keep, and the checks that run them."""
