"""The workbench pages (listed explicitly by app.py) and their shared helpers.

Not named pages/: see app.py.
"""
