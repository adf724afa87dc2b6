"""The live runtime's I/O side: market feed to the kernels (market.py) and the order gateways (gateway.py)."""
