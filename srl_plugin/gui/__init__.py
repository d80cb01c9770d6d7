"""Dialogs and map tools of the SRL plugin."""
