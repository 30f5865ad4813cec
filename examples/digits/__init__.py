"""The pieces of ``examples/demo.py``: data, the two model flavours, the loop and the report."""
