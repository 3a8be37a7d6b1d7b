"""A/B analysis of the exposure log (`feedrank ab report`) and its closed-loop simulation
against the real server (`feedrank ab simulate`)."""
